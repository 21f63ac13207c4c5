"""The embedding rule of centre cuts (sapiensid_hf/cut_views.py): a model folder that records it embeds every
photo as the mean of the photo and its cuts at the photo's keypoints, in every tool, with any worker count;
a folder without it embeds the photo as it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cut_detectors import FailsOnCuts, OnlyInWholePhotos
from detector_files import require_detector_files
from PIL import Image

from sapiensid_cli import main
from sapiensid_hf.cut_views import embedding_cuts
from sapiensid_hf.embedding_views import embed_images
from sapiensid_hf.evaluation.public_dev import embed_rows_of_files
from sapiensid_hf.inference import (
    ModelFolderError,
    SapiensIDPipeline,
    load_model,
    load_pipeline,
    weights_fingerprint,
)
from sapiensid_hf.modeling.cut_averaging import fold_in_cuts
from sapiensid_hf.processing.image_decoding import SapiensIDInputError
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.people_detection import same_person_keypoints
from sapiensid_hf.processing.photo_cuts import centre_cut_box, keypoints_in_cut

RULE = {"scales": [1.0, 0.95, 0.9], "source": "tests"}
PHOTOS = ("face_a_1.jpg", "street_bus.jpg", "two_men.jpg")


def test_a_centre_cut_keeps_the_middle_of_the_photo():
    assert centre_cut_box(200, 100, 0.9) == (5, 10, 95, 190)
    assert centre_cut_box(200, 100, 1.0) == (0, 0, 100, 200)
    assert centre_cut_box(3, 3, 0.01) == (1, 1, 2, 2)  # never empty
    with pytest.raises(ValueError, match="scale"):
        centre_cut_box(10, 10, 1.2)


def test_keypoints_follow_the_photo_into_its_cut():
    # A 200 (high) x 100 photo sits in a 200-pixel square 50 pixels from its left; its 0.9 cut, 90 x 180
    # pixels from (5, 10), sits in a 180-pixel square 45 pixels from its left.
    keypoints = np.full((19, 2), -1.0, dtype=np.float32)
    keypoints[0] = ((50 + 30) / 200, 100 / 200)  # pixel (30, 100) of the photo
    keypoints[5] = ((50 + 2) / 200, 100 / 200)  # pixel (2, 100): left of the cut
    inside = keypoints_in_cut(keypoints, 200, 100, centre_cut_box(200, 100, 0.9))
    np.testing.assert_allclose(inside[0], ((45 + 25) / 180, 90 / 180), atol=1e-6)
    assert (inside[5] == -1).all() and (inside[1:5] == -1).all()


def test_the_rule_is_read_from_the_config_and_a_malformed_one_is_refused(tmp_path, trained_tiny_model_dir):
    class Config:
        pass

    config = Config()
    assert embedding_cuts(config) == (1.0,)
    config.embedding_cuts = RULE
    assert embedding_cuts(config) == (1.0, 0.95, 0.9)
    for bad in ([1.0, 0.9], {"scales": [0.9, 1.0]}, {"scales": [1.0, 1.1]}, {"scales": []}, {"scales": [1.0, True]}):
        config.embedding_cuts = bad
        with pytest.raises(ValueError, match="embedding_cuts"):
            embedding_cuts(config)
    folder = shutil.copytree(trained_tiny_model_dir, tmp_path / "model")
    saved = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**saved, "embedding_cuts": {"scales": [0.9]}}))
    with pytest.raises(ModelFolderError, match=r"config.json: embedding_cuts"):
        load_model(folder)


def test_a_cut_where_the_person_is_gone_adds_nothing():
    photo = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # the model's raw embeddings: each view counts as its unit vector
    cuts = torch.tensor([[[0.0, 5.0], [0.6, 0.8]], [[1.0, 0.0], [1.0, 0.0]]])
    keypoints = torch.full((2, 2, 19, 2), -1.0)
    keypoints[0, 0, 3] = 0.5  # photo 0 keeps someone in its first cut only; photo 1 in no cut
    folded = fold_in_cuts(photo, cuts, keypoints)
    np.testing.assert_allclose(folded[0].numpy(), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(folded[1].numpy(), [0.0, 1.0], atol=1e-6)


@pytest.fixture(scope="module")
def cut_model_dir(tmp_path_factory, trained_tiny_model_dir) -> Path:
    require_detector_files()
    folder = shutil.copytree(trained_tiny_model_dir, tmp_path_factory.mktemp("cut_model") / "model")
    saved = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**saved, "embedding_cuts": RULE}))
    return folder


def _reference(pipeline, rgb: np.ndarray, flip: bool) -> np.ndarray:
    """By hand: the photo embedded as it is, then each cut: the detector's person there when it is the
    photo's, else the photo's keypoints mapped into the cut."""
    model, processor = pipeline.model, pipeline.processor
    whole = next(embed_images(model, processor, [rgb], 1, pipeline.device, flip, cut_scales=(1.0,)))
    keypoints = whole.features["keypoints"][0].numpy()
    total = whole.embeddings[0].numpy().copy()
    for scale in RULE["scales"][1:]:
        left, top, right, bottom = centre_cut_box(*rgb.shape[:2], scale)
        cut = np.ascontiguousarray(rgb[top:bottom, left:right])
        inside = keypoints_in_cut(keypoints, *rgb.shape[:2], (left, top, right, bottom))
        seen = next(embed_images(model, processor, [cut], 1, pipeline.device, flip, cut_scales=(1.0,)))
        if seen.features["keypoint_source"][0] == "none" or not same_person_keypoints(inside, seen.features["keypoints"][0].numpy()):
            seen = next(embed_images(model, processor, [cut], 1, pipeline.device, flip, keypoints=inside[None], cut_scales=(1.0,)))
        if (seen.features["keypoints"][0] != -1).all(dim=1).any():
            total += seen.embeddings[0].numpy()
    return total / np.linalg.norm(total)


@pytest.mark.parametrize("flip", [False, True])
def test_a_folder_with_the_rule_embeds_the_mean_of_the_photo_and_its_cuts(cut_model_dir, people_dir, flip):
    pipeline = load_pipeline(cut_model_dir)
    assert pipeline.embedding_cuts == (1.0, 0.95, 0.9)
    paths = [people_dir / name for name in PHOTOS]
    # The photos as given: the rule of centre cuts (a small person's own cuts: test_small_person_framing).
    result = pipeline.embed([str(path) for path in paths], flip=flip, frame_small_people=False)
    for row, path in enumerate(paths):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        np.testing.assert_allclose(result.embeddings[row], _reference(pipeline, rgb, flip), atol=1e-5)
    # `evaluate` and the development checks (given keypoints) follow the same rule.
    scored = embed_rows_of_files(pipeline.model, pipeline.processor, [str(path) for path in paths], result.keypoints, flip=flip)
    np.testing.assert_allclose(scored, result.embeddings, atol=1e-5)
    plain = load_pipeline(cut_model_dir)
    plain.model.config.embedding_cuts = None  # the documented way to embed photos as they are
    as_is = plain.embed([str(path) for path in paths], flip=flip, frame_small_people=False)
    np.testing.assert_array_equal(as_is.keypoints, result.keypoints)  # what was found is the photo's
    assert not np.allclose(as_is.embeddings, result.embeddings, atol=1e-4)


def test_the_rule_holds_with_worker_processes_and_in_the_command_line(capsys, tmp_path, cut_model_dir, people_dir):
    pipeline = load_pipeline(cut_model_dir)
    paths = [str(people_dir / name) for name in PHOTOS]
    alone = pipeline.embed(paths).embeddings
    np.testing.assert_allclose(pipeline.embed(paths, num_workers=2).embeddings, alone, atol=1e-6)
    output = tmp_path / "embeddings.npy"
    assert main(["embed", *paths, "--model", str(cut_model_dir), "--output", str(output)]) == 0  # default workers
    np.testing.assert_allclose(np.load(output), alone, atol=1e-6)


def test_the_cuts_keypoints_of_a_run_give_the_same_embeddings_without_detecting(cut_model_dir, people_dir):
    # What `evaluate` and `calibrate` cache between runs (evaluation/cut_keypoint_cache.py).
    pipeline = load_pipeline(cut_model_dir)
    paths = [str(people_dir / name) for name in PHOTOS]
    model, processor = pipeline.model, pipeline.processor
    first = list(embed_images(model, processor, paths, 2, pipeline.device, True, num_workers=2))
    keypoints = torch.cat([batch.features["keypoints"] for batch in first]).numpy()
    cut_keypoints = torch.cat([batch.features["cut_keypoints"] for batch in first]).numpy()
    assert cut_keypoints.shape == (len(paths), 2, 19, 2)
    again = list(embed_images(model, processor, paths, 2, pipeline.device, True, num_workers=2, keypoints=keypoints, cut_keypoints=cut_keypoints))
    np.testing.assert_array_equal(torch.cat([b.embeddings for b in again]), torch.cat([b.embeddings for b in first]))
    with pytest.raises(ValueError, match="cut_keypoints of shape"):
        next(embed_images(model, processor, paths, 2, pipeline.device, keypoints=keypoints, cut_keypoints=cut_keypoints[:, :1]))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_under_the_rule_errors_name_the_file_and_its_index(tmp_path, trained_tiny_model_dir, num_workers):
    # The photo is decoded once and its cuts are read from the array: what goes wrong is still said of the file.
    model = load_model(trained_tiny_model_dir)
    model.config.embedding_cuts = RULE
    processor = SapiensIDImageProcessor.from_model_config(model.config, detector=FailsOnCuts())
    pipeline = SapiensIDPipeline(model, processor, trained=True)
    photo, broken = tmp_path / "photo.png", tmp_path / "broken.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(photo)
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(SapiensIDInputError, match=r"image 1 \('.*broken\.jpg'\)"):
        working = SapiensIDImageProcessor.from_model_config(model.config, detector=OnlyInWholePhotos("nobody"))
        SapiensIDPipeline(model, working, trained=True).embed([str(photo), str(broken)], num_workers=num_workers)
    with pytest.raises(RuntimeError, match=r"^image 0 \('.*photo\.png'\), its centre cut to 0\.95: the keypoint detector failed \(OSError: the detector's model"):
        pipeline.embed([str(photo)], num_workers=num_workers)


@pytest.mark.parametrize("in_cuts", ["nobody", "somebody else"])
def test_a_cut_where_the_detector_misses_the_person_uses_the_photos_keypoints(trained_tiny_model_dir, in_cuts):
    model = load_model(trained_tiny_model_dir)
    model.config.embedding_cuts = RULE
    processor = SapiensIDImageProcessor.from_model_config(model.config, detector=OnlyInWholePhotos(in_cuts), person_crop_fallback=False)
    pipeline = SapiensIDPipeline(model, processor, trained=True)
    photos = [np.random.default_rng(seed).integers(0, 256, (200, 200, 3), dtype=np.uint8) for seed in range(2)]
    result = pipeline.embed(photos, flip=False, frame_small_people=False)
    for row, photo in enumerate(photos):
        total = next(embed_images(model, processor, [photo], 1, pipeline.device, False, cut_scales=(1.0,))).embeddings[0].numpy()
        for scale in RULE["scales"][1:]:
            left, top, right, bottom = centre_cut_box(200, 200, scale)
            inside = keypoints_in_cut(result.keypoints[row], 200, 200, (left, top, right, bottom))
            cut = np.ascontiguousarray(photo[top:bottom, left:right])
            total += next(embed_images(model, processor, [cut], 1, pipeline.device, False, keypoints=inside[None], cut_scales=(1.0,))).embeddings[0].numpy()
        np.testing.assert_allclose(result.embeddings[row], total / np.linalg.norm(total), atol=1e-5)


def test_nobody_found_keeps_the_embedding_of_nobody(tmp_path, cut_model_dir, trained_tiny_model_dir):
    wall = tmp_path / "wall.png"
    Image.new("RGB", (120, 90), (128, 128, 128)).save(wall)
    with_rule = load_pipeline(cut_model_dir).embed([str(wall)])
    as_is = load_pipeline(trained_tiny_model_dir).embed([str(wall)])
    assert not with_rule.person_found[0]
    np.testing.assert_allclose(with_rule.embeddings, as_is.embeddings, atol=1e-6)


def test_the_fingerprint_tells_the_rules_apart(cut_model_dir, trained_tiny_model_dir, capsys, tmp_path, people_dir):
    with_rule, as_is = load_model(cut_model_dir), load_model(trained_tiny_model_dir)
    assert weights_fingerprint(with_rule) != weights_fingerprint(as_is)
    with_rule.config.embedding_cuts = None
    assert weights_fingerprint(with_rule) == weights_fingerprint(as_is)  # same weights, same rule
    # --no-cuts embeds the photos as they are; a gallery embedded under the rule refuses such queries.
    gallery, plain = tmp_path / "gallery.parquet", tmp_path / "plain.npy"
    photos = [str(people_dir / name) for name in PHOTOS]
    assert main(["embed", *photos, "--model", str(cut_model_dir), "--output", str(gallery)]) == 0
    assert main(["embed", *photos, "--model", str(cut_model_dir), "--no-cuts", "--output", str(plain)]) == 0
    np.testing.assert_allclose(np.load(plain), load_pipeline(trained_tiny_model_dir).embed(photos).embeddings, atol=1e-6)
    capsys.readouterr()
    status = main(["search", photos[0], "--gallery", str(gallery), "--model", str(cut_model_dir), "--no-cuts"])
    assert status == 1 and "another model or embedding rule" in capsys.readouterr().err
    assert main(["search", photos[0], "--gallery", str(gallery), "--model", str(cut_model_dir)]) == 0
