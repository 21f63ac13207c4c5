"""The person-crop fallback: small pedestrian crops get a person, non-person images still get none.

The real-crop cases are files of ../shared/data/identities in which the scene person detector finds
nobody (keypoint rules version 1, `person_crop_fallback=False`).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA
from detector_files import require_detector_files
from PIL import Image

from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_layout import BODY_POINTS
from sapiensid_hf.processing.person_crop import clean_square, content_bounds, crop_roi_of, is_person_shaped

IDENTITIES = SHARED_DATA / "identities"
PEOPLE = SHARED_DATA / "people"
# Crops in which BlazePose's person detector finds nobody (checked below with the fallback off).
FAILING_CROPS = (
    "conreid/bounding_box_train/0002_c1s1_000003.jpg",
    "conreid/bounding_box_train/0002_c5s1_000002.jpg",
    "conreid/query/0004_c1s1_000019.jpg",
    "conreid/query/0015_c2s1_000200.jpg",
    "cuhk03/train/0002_06.jpg",
    "cuhk03/train/0002_09.jpg",
)


def test_content_bounds_trims_white_padding_and_black_bars():
    square = np.full((128, 128, 3), 255, np.uint8)  # white square padding
    square[:, 32:96] = 0  # a 64-wide image with black side bars ...
    square[10:120, 50:78] = 120  # ... around a 28-wide person
    bounds = content_bounds(square)
    assert (bounds.top, bounds.bottom, bounds.left, bounds.right) == (10, 120, 50, 78)
    assert is_person_shaped(bounds, 1.25) and not is_person_shaped(bounds, 4.0)
    cleaned = clean_square(square, bounds)
    assert (cleaned[:, :50] == 255).all() and (cleaned[10:120, 50:78] == 120).all()
    roi = crop_roi_of(bounds, 128, 1.25)
    assert roi.rotation == 0.0 and np.isclose(roi.center_x, 64 / 128) and np.isclose(roi.center_y, 65 / 128)
    assert np.isclose(roi.size, 110 * 1.25 / 128)
    assert content_bounds(np.zeros((32, 32, 3), np.uint8)) is None  # a blank image has no content


@pytest.fixture(scope="module")
def processors():
    require_detector_files()
    return SapiensIDImageProcessor(person_crop_fallback=False), SapiensIDImageProcessor()


def test_pedestrian_crops_get_a_person_with_body_keypoints_inside_the_image(processors):
    if not IDENTITIES.is_dir():
        pytest.skip(f"identity photos not found at {IDENTITIES}")
    old_rules, new_rules = processors
    files = [IDENTITIES / name for name in FAILING_CROPS]
    before = old_rules(files, return_tensors="np")
    assert set(before["keypoint_source"]) <= {"none", "face"}  # the scene detector finds nobody
    after = new_rules(files, return_tensors="np")
    assert after["keypoint_source"] == ["crop"] * len(files)
    for index, path in enumerate(files):
        width, height = Image.open(path).size
        side = max(width, height)
        box = ((side - width) // 2 / side, (side - height) // 2 / side)
        body = after["keypoints"][index][list(BODY_POINTS)]
        shown = (body != -1).all(axis=1)
        assert shown.sum() >= 8, f"{path.name}: only {shown.sum()} body keypoints"
        inside_x = (body[shown, 0] >= box[0] - 1e-6) & (body[shown, 0] <= 1 - box[0] + 1e-6)
        inside_y = (body[shown, 1] >= box[1] - 1e-6) & (body[shown, 1] <= 1 - box[1] + 1e-6)
        assert inside_x.all() and inside_y.all(), f"{path.name}: a keypoint lies outside the image"
        # A standing person: shoulders above hips above knees above ankles (the visible ones).
        points = after["keypoints"][index]
        heights = [points[pair][(points[pair] != -1).all(axis=1), 1] for pair in ([7, 8], [13, 14], [15, 16], [17, 18])]
        heights = [float(values.mean()) for values in heights if values.size]
        assert len(heights) >= 3 and heights == sorted(heights), f"{path.name}: body points out of order {heights}"


def _textures() -> dict[str, np.ndarray]:
    generator = np.random.default_rng(0)
    street = np.asarray(Image.open(PEOPLE / "street_bus.jpg").convert("RGB")) if PEOPLE.is_dir() else None
    textures = {
        "noise_tall": generator.integers(0, 256, (256, 96, 3), dtype=np.uint8),
        "noise_square": generator.integers(0, 256, (200, 200, 3), dtype=np.uint8),
        "vertical_stripes": np.repeat((np.arange(128) // 8 % 2 * 200 + 20).astype(np.uint8)[None, :, None], 256, 0).repeat(3, 2),
        "horizontal_stripes": np.repeat((np.arange(256) // 8 % 2 * 200 + 20).astype(np.uint8)[:, None, None], 100, 1).repeat(3, 2),
        "gradient": np.repeat(np.linspace(0, 255, 256).astype(np.uint8)[:, None, None], 90, 1).repeat(3, 2),
        "checkerboard": (np.indices((256, 100)).sum(0) // 16 % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2),
    }  # fmt: skip
    if street is not None:
        textures["street_without_people"] = street[:200, :120]  # the sky and building above the people
    return textures


@pytest.mark.parametrize("name", list(_textures()))
def test_images_without_a_person_still_report_none(processors, name):
    _, new_rules = processors
    result = new_rules(_textures()[name], return_tensors="np")
    assert not result["person_found"][0], f"{name}: {result['keypoint_source'][0]}"


def test_photos_of_people_keep_their_detections(processors):
    if not PEOPLE.is_dir():
        pytest.skip(f"people photos not found at {PEOPLE}")
    old_rules, new_rules = processors
    files = sorted(PEOPLE.glob("*.jpg"))
    before, after = old_rules(files, return_tensors="np"), new_rules(files, return_tensors="np")
    assert after["keypoint_source"] == before["keypoint_source"]
    assert np.array_equal(after["chosen_person"], before["chosen_person"])
    assert np.allclose(after["keypoints"], before["keypoints"], atol=1e-6)
