"""A folder's embedding rule on the Hugging Face path: the processor records it (preprocessor_config.json
`embedding_cuts`, `embedding_flip`) and makes the cuts and the mirrors' keypoints, the model adds the views
up, so `model(**processor(photos))` and the `image-feature-extraction` pipeline give what `sapiensid embed`
gives (flip on, as by default). (The shipped folder without this package, on the newest and the oldest supported transformers:
tests/test_hub_ecosystem.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cut_detectors import FailsOnCuts
from detector_files import require_detector_files
from PIL import Image

from sapiensid_hf.embedding_views import embed_images
from sapiensid_hf.inference import ModelFolderError, load_model, load_pipeline
from sapiensid_hf.processing.image_decoding import SapiensIDInputError
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_layout import flip_keypoints

RULE = {"scales": [1.0, 0.95, 0.9], "source": "tests"}
PHOTOS = ("face_a_1.jpg", "street_bus.jpg", "two_men.jpg")


@pytest.fixture(scope="module")
def rule_dir(tmp_path_factory, trained_tiny_model_dir) -> Path:
    """The tiny trained model with the rule in both files, as the shipped folder has it."""
    require_detector_files()
    folder = shutil.copytree(trained_tiny_model_dir, tmp_path_factory.mktemp("rule") / "model")
    _record(folder, "config.json", RULE)
    _record(folder, "preprocessor_config.json", RULE["scales"], embedding_flip=True)
    return folder


def _record(folder: Path, name: str, cuts, **more) -> None:
    saved = json.loads((folder / name).read_text())
    (folder / name).write_text(json.dumps({**saved, "embedding_cuts": cuts, **more}))


def test_the_processor_records_the_rule_and_refuses_a_malformed_one(tmp_path):
    processor = SapiensIDImageProcessor(size=64, embedding_cuts=(1.0, 0.95, 0.9))
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["embedding_cuts"] == [1.0, 0.95, 0.9]
    assert SapiensIDImageProcessor.from_pretrained(tmp_path).embedding_cuts == [1.0, 0.95, 0.9]
    assert SapiensIDImageProcessor(size=64, embedding_cuts=[1.0]).embedding_cuts is None  # the photo as it is
    for bad in ([0.9], [1.0, 1.2], [1.0, 0.0], [1.0, True], [], "1.0, 0.9"):
        with pytest.raises(ValueError, match="embedding_cuts must list the photo itself"):
            SapiensIDImageProcessor(size=64, embedding_cuts=bad)


def test_the_processor_makes_the_cuts_the_package_makes(rule_dir, people_dir):
    hub_processor = SapiensIDImageProcessor.from_pretrained(rule_dir)
    paths = [str(people_dir / name) for name in PHOTOS]
    features = hub_processor(paths, return_tensors="np")
    side = hub_processor.image_size
    assert features["cut_pixel_values"].shape == (3, 6, side, side)  # each cut's 3 channels in turn
    assert features["cut_pixel_mask"].shape == (3, 2, side, side) and features["cut_keypoints"].shape == (3, 2, 19, 2)
    # The package's embedding loop (workers, given keypoints) asks the processor for the same cuts.
    pipeline = load_pipeline(rule_dir)
    loop = next(embed_images(pipeline.model, pipeline.processor, paths, 3, pipeline.device, num_workers=2))
    for name in ("pixel_values", "keypoints", "cut_pixel_values", "cut_pixel_mask", "cut_keypoints"):
        np.testing.assert_array_equal(loop.features[name].numpy(), features[name], err_msg=name)
    # Cut keypoints from an earlier call: nothing is detected, the features are the same.
    again = hub_processor(paths, keypoints=features["keypoints"], cut_keypoints=features["cut_keypoints"], return_tensors="np")
    np.testing.assert_array_equal(again["cut_pixel_values"], features["cut_pixel_values"])
    # The mirrors' keypoints: what flip test-time augmentation reads (x -> 1 - x, left and right swapped).
    np.testing.assert_array_equal(features["mirrored_keypoints"], flip_keypoints(features["keypoints"]))
    np.testing.assert_array_equal(features["cut_mirrored_keypoints"][:, 1], flip_keypoints(features["cut_keypoints"][:, 1]))
    as_is = hub_processor(paths, return_tensors="np", embedding_cuts=None, embedding_flip=False)
    assert not any(name.startswith("cut_") or "mirrored" in name for name in as_is)
    np.testing.assert_array_equal(as_is["keypoints"], features["keypoints"])  # what was found is the photo's


@pytest.mark.parametrize("flip", [True, False])
def test_model_of_processor_gives_what_sapiensid_embed_gives(rule_dir, people_dir, flip):
    pipeline = load_pipeline(rule_dir)
    paths = [str(people_dir / name) for name in PHOTOS]
    # `sapiensid embed [--no-flip]`'s library function on the photos as given: the processor and the model
    # embed the picture they get; the package also cuts a person who fills little of the photo (below).
    as_given = pipeline.embed(paths, flip=flip, frame_small_people=False)
    package = as_given.embeddings
    by_default = pipeline.embed(paths, flip=flip)
    assert by_default.framed.any() and not as_given.framed.any()
    np.testing.assert_allclose(by_default.embeddings[~by_default.framed], package[~by_default.framed], atol=1e-6)
    model = load_model(rule_dir).eval()
    inputs = SapiensIDImageProcessor.from_pretrained(rule_dir)(paths, return_tensors="pt", embedding_flip=flip)
    with torch.no_grad():
        output = model(**inputs)
    np.testing.assert_allclose(output.pooler_output.numpy(), package, atol=1e-5)
    np.testing.assert_allclose(torch.nn.functional.normalize(output.embeddings, dim=-1).numpy(), package, atol=1e-5)
    with torch.no_grad():
        alone = model(**{name: value for name, value in inputs.items() if not name.startswith("cut_")})
    assert np.abs(alone.pooler_output.numpy() - package).max() > 1e-3  # the cuts count
    assert alone.last_hidden_state.shape == output.last_hidden_state.shape  # the other outputs are the photos'
    torch.testing.assert_close(alone.last_hidden_state, output.last_hidden_state)


def test_the_model_refuses_half_of_the_cut_inputs(rule_dir, people_dir):
    model = load_model(rule_dir).eval()
    inputs = SapiensIDImageProcessor.from_pretrained(rule_dir)([str(people_dir / PHOTOS[0])], return_tensors="pt")
    with pytest.raises(ValueError, match="go together"):
        model(**{name: value for name, value in inputs.items() if name != "cut_pixel_mask"})
    with pytest.raises(ValueError, match="cut inputs disagree"):
        model(**{**inputs, "cut_pixel_values": inputs["cut_pixel_values"][:, :3]})
    with pytest.raises(ValueError, match="mirrored_keypoints and cut_mirrored_keypoints go together"):
        model(**{name: value for name, value in inputs.items() if name != "cut_mirrored_keypoints"})


def test_a_folder_whose_two_records_differ_is_refused(tmp_path, rule_dir):
    folder = shutil.copytree(rule_dir, tmp_path / "model")
    _record(folder, "preprocessor_config.json", [1.0, 0.9], embedding_flip=True)
    with pytest.raises(ModelFolderError, match=r"preprocessor_config.json records embedding_cuts \[1.0, 0.9\], but config.json"):
        load_pipeline(folder)
    # Agreeing records: the package applies the model config's rule itself, the processor's copy is off.
    processor = load_pipeline(rule_dir).processor
    assert processor.embedding_cuts is None and processor.embedding_flip is False  # flip: each call's choice


def test_processor_errors_name_the_image_and_its_cut(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(photo)
    processor = SapiensIDImageProcessor(size=64, embedding_cuts=[1.0, 0.95], detector=FailsOnCuts())
    with pytest.raises(RuntimeError, match=r"^image 0 \('.*photo\.png'\), its centre cut to 0\.95: the keypoint detector failed"):
        processor([str(photo)])
    with pytest.raises(SapiensIDInputError, match=r"cut_keypoints must have shape \(1, 1, 19, 2\)"):
        processor([str(photo)], cut_keypoints=np.full((1, 2, 19, 2), -1.0))
    with pytest.raises(SapiensIDInputError, match="makes no centre cuts"):
        processor([str(photo)], cut_keypoints=np.full((1, 1, 19, 2), -1.0), embedding_cuts=None)


def test_training_from_a_folder_with_the_rule_does_not_carry_it_over(rule_dir):
    # The rule was chosen for the starting weights; the run's own folder is measured (and saved) without it.
    from sapiensid_hf.training.config import ModelConfig
    from sapiensid_hf.training.recognition_model import build_backbone

    backbone = build_backbone(ModelConfig(pretrained=str(rule_dir)))
    assert "embedding_cuts" not in backbone.config.to_dict()
