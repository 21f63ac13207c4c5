"""The processor's outputs, settings, plug-in detectors and save / load, without the real detector."""

import pickle

import numpy as np
import pytest
import torch
from hub_isolation import run_without_package
from PIL import Image
from transformers import AutoImageProcessor

from sapiensid_hf.modeling.configuration_sapiensid import SapiensIDConfig
from sapiensid_hf.processing.detector_assets import DetectorNotAvailableError
from sapiensid_hf.processing.image_processing_sapiensid import (
    MODEL_INPUT_NAMES,
    SapiensIDImageProcessor,
    SapiensIDInputError,
)
from sapiensid_hf.processing.keypoint_detector import KeypointDetector, KeypointResult
from sapiensid_hf.processing.keypoint_layout import KEYPOINT_NAMES, empty_keypoints
from sapiensid_hf.processing.retina_rois import compute_roi_boxes
from sapiensid_hf.processing.visualization_sapiensid import visualize

INDEX = {name: index for index, name in enumerate(KEYPOINT_NAMES)}


def _person_keypoints() -> np.ndarray:
    """A frontal upper body in the middle of the square (normalised coordinates)."""
    keypoints = empty_keypoints()
    points = {
        "nose": (0.5, 0.3), "eye_1": (0.46, 0.26), "eye_2": (0.54, 0.26), "mouth_1": (0.47, 0.35),
        "mouth_2": (0.53, 0.35), "left_ear": (0.58, 0.28), "right_ear": (0.42, 0.28),
        "left_shoulder": (0.65, 0.5), "right_shoulder": (0.35, 0.5),
    }  # fmt: skip
    for name, xy in points.items():
        keypoints[INDEX[name]] = xy
    return keypoints


class FixedDetector:
    """A plug-in detector returning fixed keypoints; records the square it was given."""

    def __init__(self, keypoints: np.ndarray):
        self.keypoints = keypoints
        self.seen_shapes = []

    def detect(self, image: np.ndarray) -> KeypointResult:
        self.seen_shapes.append(image.shape)
        boxes = np.array([[0.0, 0.0, 0.2, 0.2], [0.3, 0.2, 0.7, 0.6]], dtype=np.float32)
        return KeypointResult(self.keypoints.copy(), boxes, chosen_person=1, source="pose")


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (120, 80, 3), dtype=np.uint8)


def test_outputs_with_given_keypoints(image):
    processor = SapiensIDImageProcessor(size=96)
    keypoints = _person_keypoints()
    out = processor([image, image], keypoints=np.stack([keypoints, empty_keypoints()]))
    assert out["pixel_values"].shape == (2, 3, 96, 96) and out["pixel_values"].dtype == torch.float32
    assert out["pixel_mask"].shape == (2, 96, 96) and out["pixel_mask"].dtype == torch.int64
    assert out["keypoints"].shape == (2, 19, 2)
    assert out["roi_boxes"].shape == (2, 2, 4)
    torch.testing.assert_close(out["keypoints"][0], torch.from_numpy(keypoints))
    face, body = compute_roi_boxes(out["keypoints"])
    torch.testing.assert_close(out["roi_boxes"], torch.stack([face, body], dim=1))
    assert out["person_found"].tolist() == [True, False]
    assert out["face_found"].tolist() == [True, False]
    assert (out["roi_boxes"][1] == -1).all()  # nobody: full image only
    assert out["num_people"].tolist() == [-1, -1]  # the detector did not run
    assert out["chosen_person"].tolist() == [-1, -1]
    assert out["keypoint_source"] == ["given", "given"]
    assert set(MODEL_INPUT_NAMES) <= set(out.keys())


def test_pixel_values_are_normalised_and_the_mask_marks_the_image(image):
    out = SapiensIDImageProcessor(size=96)(image, keypoints=empty_keypoints())
    pixels = out["pixel_values"][0]
    assert pixels.min() >= -1 and pixels.max() <= 1
    # 120 x 80: 20 columns of white padding each side of the 120 square, i.e. 16 of 96 output columns.
    assert (pixels[:, :, :15] == 1).all()
    mask = out["pixel_mask"][0]
    assert mask[:, 16:80].all() and not mask[:, :16].any() and not mask[:, 80:].any()


def test_mean_and_std_settings_are_applied(image):
    plain = SapiensIDImageProcessor(size=32, image_mean=[0, 0, 0], image_std=[1, 1, 1])(
        image, keypoints=empty_keypoints()
    )
    default = SapiensIDImageProcessor(size=32)(image, keypoints=empty_keypoints())
    torch.testing.assert_close(default["pixel_values"], (plain["pixel_values"] - 0.5) / 0.5)


def test_batch_forms_agree(image):
    processor = SapiensIDImageProcessor(size=32)
    given = np.stack([empty_keypoints()] * 2)
    as_list = processor([image, image], keypoints=given)["pixel_values"]
    as_array = processor(np.stack([image, image]), keypoints=given)["pixel_values"]
    as_tensor = processor(torch.from_numpy(np.stack([image, image])).permute(0, 3, 1, 2), keypoints=given)[
        "pixel_values"
    ]
    torch.testing.assert_close(as_list, as_array)
    torch.testing.assert_close(as_list, as_tensor)
    single = processor(Image.fromarray(image), keypoints=torch.from_numpy(empty_keypoints()))["pixel_values"]
    torch.testing.assert_close(single[0], as_list[0])


def test_numpy_outputs(image):
    out = SapiensIDImageProcessor(size=32)(image, keypoints=empty_keypoints(), return_tensors="np")
    assert isinstance(out["pixel_values"], np.ndarray) and isinstance(out["person_boxes"][0], np.ndarray)
    with pytest.raises(ValueError, match="return_tensors"):
        SapiensIDImageProcessor(size=32)(image, keypoints=empty_keypoints(), return_tensors="tf")


@pytest.mark.parametrize(
    ("keypoints", "message"),
    [
        (np.zeros((3, 2)), "shape"),
        (np.full((19, 2), 1.5), r"\[0, 1\]"),
        (np.array([[-1.0, 0.5]] * 19), "both coordinates"),
        (np.full((19, 2), np.nan), "finite"),
        ("nonsense", "float array"),
    ],
)
def test_bad_keypoints_are_refused(image, keypoints, message):
    with pytest.raises(SapiensIDInputError, match=message):
        SapiensIDImageProcessor(size=32)(image, keypoints=keypoints)


def test_bad_image_in_a_batch_is_named(image, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(SapiensIDInputError, match=r"image 1 \('.*broken\.jpg'\)"):
        SapiensIDImageProcessor(size=32)([image, broken], keypoints=np.stack([empty_keypoints()] * 2))
    with pytest.raises(SapiensIDInputError, match="empty list"):
        SapiensIDImageProcessor(size=32)([])
    with pytest.raises(SapiensIDInputError, match="flat list"):
        SapiensIDImageProcessor(size=32)([[image]])


def test_plugged_in_detector_gets_the_square_and_its_points_follow_the_official_rules(image):
    keypoints = _person_keypoints()
    # Swapped shoulders (the official rule puts "left" at the larger x) and an ankle in the padding.
    keypoints[[INDEX["left_shoulder"], INDEX["right_shoulder"]]] = keypoints[
        [INDEX["right_shoulder"], INDEX["left_shoulder"]]
    ]
    keypoints[INDEX["left_ankle"]] = (0.05, 0.9)
    detector = FixedDetector(keypoints)
    assert isinstance(detector, KeypointDetector)
    processor = SapiensIDImageProcessor(size=64, detector=detector)
    out = processor(image)
    assert detector.seen_shapes == [(120, 120, 3)]
    result = out["keypoints"][0].numpy()
    np.testing.assert_allclose(result[INDEX["left_shoulder"]], [0.65, 0.5])
    np.testing.assert_allclose(result[INDEX["right_shoulder"]], [0.35, 0.5])
    assert (result[INDEX["left_ankle"]] == -1).all()  # x = 0.05 lies in the left padding (image from 1/6)
    assert out["num_people"].tolist() == [2] and out["chosen_person"].tolist() == [1]
    torch.testing.assert_close(out["person_box"][0], torch.tensor([0.3, 0.2, 0.7, 0.6]))
    assert out["person_boxes"][0].shape == (2, 4) and out["keypoint_source"] == ["pose"]


def test_detector_setter_rejects_objects_without_detect():
    with pytest.raises(TypeError, match="detect"):
        SapiensIDImageProcessor(detector=object())


def test_missing_detector_files_tell_the_user_what_to_run(image, tmp_path):
    processor = SapiensIDImageProcessor(size=32, detector_cache_dir=str(tmp_path))
    with pytest.raises(DetectorNotAvailableError, match="sapiensid download-detector") as error:
        processor(image)
    assert str(tmp_path) in str(error.value)


def test_settings_can_be_overridden_per_call(image):
    processor = SapiensIDImageProcessor(size=64)
    out = processor(image, keypoints=_person_keypoints(), size=32, roi_padding=0.0)
    assert out["pixel_values"].shape[-1] == 32
    face, _ = compute_roi_boxes(out["keypoints"], padding=0.0)
    torch.testing.assert_close(out["roi_boxes"][:, 0], face)
    with pytest.raises(TypeError, match="unexpected argument"):
        processor(image, keypoints=_person_keypoints(), sise=32)
    with pytest.raises(TypeError, match="do_resize"):  # generic image-processor options are not silently ignored
        processor(image, keypoints=_person_keypoints(), do_resize=False)
    with pytest.raises(TypeError, match="set on the processor"):
        processor(image, min_keypoint_confidence=0.9)


def test_from_model_config_follows_the_config():
    config = SapiensIDConfig.tiny(roi_padding=0.25)
    processor = SapiensIDImageProcessor.from_model_config(config)
    assert processor.size == {"height": 96, "width": 96}
    assert processor.patch_size == 16 and processor.roi_padding == 0.25


def test_save_and_load_through_auto_image_processor(image, tmp_path):
    processor = SapiensIDImageProcessor(size=48, roi_padding=0.2, min_keypoint_confidence=0.6)
    processor.save_pretrained(tmp_path)
    saved = {path.name for path in tmp_path.iterdir()}
    assert {
        "preprocessor_config.json",
        "image_processing_sapiensid.py",
        "retina_rois.py",
        "keypoint_detector.py",
    } <= saved
    assert not any(name.endswith(".tflite") for name in saved)  # weights stay in the detector cache
    # With the package installed the Auto class resolves to it, no remote code needed.
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, SapiensIDImageProcessor) and loaded.to_dict() == processor.to_dict()
    given = _person_keypoints()
    expected = processor(image, keypoints=given)
    torch.save({"image": image, "keypoints": given, "expected": {k: expected[k] for k in MODEL_INPUT_NAMES}}, tmp_path / "io.pt")
    # Without it, the saved flat code loads with trust_remote_code and gives the same inputs.
    stdout = run_without_package(
        f"""
        import torch
        from transformers import AutoImageProcessor
        loaded = AutoImageProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert type(loaded).__module__.startswith("transformers_modules"), type(loaded).__module__
        data = torch.load({str(tmp_path / "io.pt")!r}, weights_only=False)
        actual = loaded(data["image"], keypoints=data["keypoints"])
        for name, value in data["expected"].items():
            torch.testing.assert_close(actual[name], value)
        print("remote ok")
        """
    )
    assert "remote ok" in stdout


def test_detector_is_not_serialised(image, tmp_path):
    processor = SapiensIDImageProcessor(size=32, detector=FixedDetector(_person_keypoints()))
    assert not {"detector", "_detector"} & set(processor.to_dict())
    assert "FixedDetector" not in processor.to_json_string()
    restored = pickle.loads(pickle.dumps(processor))
    assert isinstance(restored.detector, FixedDetector)  # a picklable plug-in survives pickling


def test_visualisation_writes_a_png(image, tmp_path):
    processor = SapiensIDImageProcessor(size=64, patch_size=16)
    out = processor(image, keypoints=_person_keypoints())
    path = tmp_path / "retina.png"
    drawing = visualize(out, 0, patch_size=processor.patch_size, scale=2, path=path)
    assert drawing.size == (128, 128)
    with Image.open(path) as saved:
        assert saved.format == "PNG" and saved.size == (128, 128)
    pixels = np.asarray(drawing)
    assert (np.abs(pixels.astype(int) - (235, 40, 40)).sum(axis=-1) < 30).any()  # the face box is drawn


def test_visualisation_takes_the_processors_patch_size_and_normalisation(image):
    processor = SapiensIDImageProcessor(size=64, patch_size=16, image_mean=(0.4, 0.4, 0.4), image_std=(0.3, 0.3, 0.3))
    out = processor(image, keypoints=_person_keypoints())
    given = np.asarray(visualize(out, 0, processor=processor))
    spelled_out = np.asarray(visualize(out, 0, image_mean=(0.4,) * 3, image_std=(0.3,) * 3, patch_size=16))
    np.testing.assert_array_equal(given, spelled_out)
    assert not np.array_equal(given, np.asarray(visualize(out, 0)))  # the defaults draw another grid and colours


def test_outputs_feed_the_model(image):
    from sapiensid_hf.modeling import SapiensIDModel

    config = SapiensIDConfig.tiny()
    model = SapiensIDModel(config).eval()
    processor = SapiensIDImageProcessor.from_model_config(config)
    inputs = processor([image, image], keypoints=np.stack([_person_keypoints(), empty_keypoints()]))
    with torch.no_grad():
        # Everything the processor returns includes person_found: the image with nobody in it is refused.
        with pytest.raises(ValueError, match=r"no person was found in image\(s\) \[1\] of this batch of 2"):
            model(**inputs)
        model_inputs_only = model(**{name: inputs[name] for name in MODEL_INPUT_NAMES})
        with_a_person = model(**{name: value[:1] for name, value in inputs.items() if torch.is_tensor(value)})
    embeddings = model_inputs_only.embeddings
    assert embeddings.shape == (2, config.output_dim) and torch.isfinite(embeddings).all()
    torch.testing.assert_close(with_a_person.embeddings, embeddings[:1])
    # pooler_output: the embeddings L2-normalised (the image-feature-extraction pipeline's pool=True).
    torch.testing.assert_close(model_inputs_only.pooler_output, torch.nn.functional.normalize(embeddings, dim=-1))
