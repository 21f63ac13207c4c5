"""The optional YOLOv8-pose backend with a stubbed ultralytics model (ultralytics itself is never installed)."""

import builtins
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sapiensid_hf.processing.detector_assets import DetectorNotAvailableError
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_layout import (
    EYE_1,
    EYE_2,
    LEFT_ANKLE,
    LEFT_EAR,
    LEFT_SHOULDER,
    MOUTH_1,
    MOUTH_2,
    NOSE,
    RIGHT_ANKLE,
    RIGHT_EAR,
    RIGHT_SHOULDER,
    visible,
)
from sapiensid_hf.processing.yolo_pose import YoloPoseDetector, keypoints_from_coco17, result_from_yolo


def coco_person(shift: float = 0.0) -> np.ndarray:
    points = np.stack([np.linspace(0.3, 0.7, 17) + shift, np.linspace(0.1, 0.9, 17)], axis=1).astype(np.float32)
    return points


def prediction(people: list[np.ndarray], scores: list[float]):
    """What ultralytics returns for one image: torch tensors on .keypoints.xyn and .boxes."""
    boxes = torch.tensor([[0.2 + 0.01 * index, 0.1, 0.8, 0.9] for index in range(len(people))]).reshape(-1, 4)
    return SimpleNamespace(
        keypoints=SimpleNamespace(xyn=torch.from_numpy(np.stack(people)) if people else torch.zeros(0, 17, 2)),
        boxes=SimpleNamespace(xyxyn=boxes, conf=torch.tensor(scores)),
    )


class StubYolo:
    def __init__(self, result):
        self.result, self.calls = result, []

    def __call__(self, image, verbose=False):
        self.calls.append(image)
        return [self.result]


def test_coco17_maps_onto_the_19_point_layout():
    points = coco_person()
    keypoints = keypoints_from_coco17(points)
    for coco, target in ((0, NOSE), (1, EYE_1), (2, EYE_2), (3, LEFT_EAR), (4, RIGHT_EAR), (5, LEFT_SHOULDER),
                         (6, RIGHT_SHOULDER), (15, LEFT_ANKLE), (16, RIGHT_ANKLE)):  # fmt: skip
        np.testing.assert_array_equal(keypoints[target], points[coco])
    assert not visible(keypoints[[MOUTH_1, MOUTH_2]]).any()  # the body detector has no mouth corners


def test_zeroed_points_are_missing_as_in_the_official_rule():
    points = coco_person()
    points[3] = 0.0  # left ear below ultralytics' keypoint confidence
    points[9, 0] = 0.0  # one zero coordinate is enough
    keypoints = keypoints_from_coco17(points)
    assert not visible(keypoints[LEFT_EAR]) and not visible(keypoints[LEFT_SHOULDER + 4])
    assert visible(keypoints[[NOSE, RIGHT_EAR]]).all()


def test_the_top_confidence_person_is_chosen():
    weaker, stronger = coco_person(0.0), coco_person(0.1)
    result = result_from_yolo(prediction([weaker, stronger], [0.6, 0.9]))
    np.testing.assert_allclose(result.keypoints[NOSE], stronger[0])
    assert result.chosen_person == 0 and result.num_people == 2 and result.source == "pose"
    np.testing.assert_allclose(result.person_boxes[0], [0.21, 0.1, 0.8, 0.9], rtol=1e-6)
    assert result_from_yolo(prediction([], [])) is None


def test_detector_feeds_bgr_and_plugs_into_the_processor(tmp_path):
    stub = StubYolo(prediction([coco_person()], [0.9]))
    detector = YoloPoseDetector(model=stub, face_points=None)
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = 200  # red in RGB
    detector.detect(image)
    assert stub.calls[0][0, 0].tolist() == [0, 0, 200]  # ultralytics reads arrays as BGR
    processor = SapiensIDImageProcessor(size=96, detector=detector)
    features = processor([np.full((80, 80, 3), 128, np.uint8)], return_tensors="np")
    assert features["keypoint_source"] == ["pose"] and bool(features["person_found"][0])
    assert processor.keypoint_rules["detector"] == "YoloPoseDetector"  # a plug-in is recorded in the rules


def test_without_ultralytics_the_error_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_ultralytics(name, *args, **kwargs):
        if name == "ultralytics":
            raise ImportError("No module named 'ultralytics'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ultralytics)
    with pytest.raises(DetectorNotAvailableError, match="pip install ultralytics"):
        YoloPoseDetector("yolov8n-pose.pt", face_points=None)
    with pytest.raises(ValueError, match="weights path"):
        YoloPoseDetector(face_points=None)


def test_with_retinaface_the_stubbed_body_points_get_the_official_five_face_points(people_dir):
    from detector_files import require_detector_files

    from sapiensid_hf.processing.detector_assets import locate_face_point_file
    from sapiensid_hf.processing.yolo_pose import COCO17_TO_LAYOUT

    require_detector_files()
    try:
        locate_face_point_file()
    except DetectorNotAvailableError as error:
        pytest.skip(str(error))
    photo = str(people_dir / "face_a_1.jpg")
    found = SapiensIDImageProcessor(size=96)([photo], return_tensors="np")["keypoints"][0]
    coco = found[list(COCO17_TO_LAYOUT)].copy()
    coco[(coco == -1).any(axis=-1)] = 0.0  # how ultralytics reports points it is not sure of
    detector = YoloPoseDetector(model=StubYolo(prediction([coco], [0.9])))
    keypoints = SapiensIDImageProcessor(size=96, detector=detector)([photo], return_tensors="np")["keypoints"][0]
    assert visible(keypoints[[NOSE, EYE_1, EYE_2, MOUTH_1, MOUTH_2]]).all()
    np.testing.assert_array_equal(keypoints[LEFT_SHOULDER:], found[LEFT_SHOULDER:])


def test_every_person_yolo_finds_is_a_person_of_detect_people():
    stub = StubYolo(prediction([coco_person(), coco_person(0.2)], [0.6, 0.9]))
    processor = SapiensIDImageProcessor(detector=YoloPoseDetector(model=stub, face_points=None))
    found = processor.detect_people(np.zeros((100, 200, 3), dtype=np.uint8), min_person_size=1)
    assert len(found.people) == 2 and found.found == 2
    assert all(person.body_found and person.source == "pose" for person in found.people)
    # boxes in the photo's pixels: the 200 x 200 square holds the photo 50 px down
    boxes = sorted(person.box for person in found.people)
    assert boxes[0][0] == pytest.approx(0.2 * 200, abs=1e-3)  # x: the square's x is the photo's
    assert (boxes[0][1], boxes[0][3]) == (0.0, 100.0)  # y 0.1-0.9 of the square reaches past the photo: clipped to it
    nobody = YoloPoseDetector(model=StubYolo(prediction([], [])), face_points=None)
    assert nobody.detect_people(np.zeros((64, 64, 3), dtype=np.uint8)) == []
