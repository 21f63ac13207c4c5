"""Keypoint detectors: the interface the processor calls, and the default BlazePose + BlazeFace detector.

A detector takes the padded square image (uint8, (S, S, 3), RGB) and returns a `KeypointResult`:
19 keypoints normalised to that square (-1 = missing) plus the people it saw. Any object with a
matching ``detect`` method can be plugged into the processor (see `KeypointDetector`).

`BlazePoseDetector` runs MediaPipe's models with ``ai_edge_litert`` (imported lazily):

1. Person detection (pose_detection.tflite, 224 x 224, SSD + weighted NMS, score >= 0.5). Each
   detection carries a mid-hip point and a full-body scale point (its rotated body ROI) and a
   mid-shoulder point with an upper-body scale point.
2. The most prominent person is chosen: largest body-ROI area x detection score. People are listed
   in that order; ``person_boxes`` holds each one's upper-body box (a square around the mid-shoulder
   point, half-side = distance to the upper-body scale point).
3. Landmarks (pose_landmark_full.tflite, 256 x 256 crop of the rotated ROI, scale 1.25): 33 points,
   heatmap-refined, kept when visibility >= 0.5 and presence >= 0.5. If the model's pose-presence
   flag is below 0.5 the next person is tried (at most `max_landmark_attempts`).
4. Face fallback (the fusion rule): only when step 3 yields nobody (tight face crops, group
   selfies with small faces), BlazeFace short range (128 x 128, score >= 0.5) runs on the same square;
   the most prominent face (box area x score) gives nose, eyes and ear tragions; it has no mouth
   corners, so those stay -1. When the pose model found a person, its points are used as they are.
   With ``face_points="retinaface"`` the official aligner's rule replaces this step and the five face
   points of step 3: RetinaFace on the square head crop (the whole image when nobody was found) gives
   eyes, nose and mouth corners, dropped below face score 0.5 (face_points.py).

Between 3 and 4, the person-crop fallback (person_crop.py; on by default): when the person detector
finds nobody and the image, without its uniform borders, is taller than wide by `crop_min_aspect`,
the image is taken as a crop of one person (a re-identification crop) and the landmark model runs on
an upright ROI around it. Its points are kept only with evidence of a person: the person detector's
best score on the cleaned crop reaches `crop_min_detection_confidence`, the pose-presence flag passes,
and at least `crop_min_body_points` of the 12 body points are confident. Source "crop".
"""

import contextlib
import importlib
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from .blaze_ops import (
    Detections,
    Roi,
    alignment_roi,
    crop_roi,
    decode_detections,
    decode_landmarks,
    on_silhouette,
    project_from_roi,
    ssd_anchor_centers,
    weighted_nms,
)
from .detector_assets import (
    FACE_DETECTION_SHORT_RANGE,
    POSE_DETECTION,
    POSE_LANDMARK_FULL,
    DetectorNotAvailableError,
    locate_detector_files,
)
from .face_points import RetinaFaceFivePoints, square_head_box, with_face_points
from .hog_pedestrians import pedestrian_rois
from .keypoint_layout import (
    BLAZEPOSE_INDEX,
    BODY_POINTS,
    NUM_KEYPOINTS,
    drop_outside,
    empty_keypoints,
    from_blazeface,
    from_blazepose,
    visible,
)
from .people_detection import (
    FACE_ONLY_MIN_SCORE,
    MIN_PERSON_POINTS,
    WEAK_BODY_SCORE,
    Candidate,
    FoundPerson,
    confirmed_groups,
    face_has_body,
    face_person_box,
    is_plausible_person,
    is_same_person,
    keypoint_box,
    merge_finds,
    most_prominent_first,
    same_body_candidate,
    same_face_candidate,
    search_windows,
    without_points_off_person,
)
from .person_crop import clean_square, content_bounds, crop_roi_of, is_person_shaped

POSE_DETECTOR_INPUT = 224
POSE_DETECTOR_STRIDES = (8, 16, 32, 32, 32)
POSE_LANDMARK_INPUT = 256
POSE_NUM_LANDMARKS = 39  # 33 body landmarks + 6 auxiliary ones
POSE_ROI_SCALE = 1.25
# BlazePose's arm and leg landmarks (11-16, 23-28): a found person keeps one only where the landmark
# model's own person segmentation is, within this many of its 256 cells; the landmark model places hips
# and legs confidently on an empty wall below a head-and-shoulders photo.
POSE_LIMB_LANDMARKS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
SILHOUETTE_RADIUS = 4
FACE_DETECTOR_INPUT = 128
FACE_DETECTOR_STRIDES = (8, 16, 16, 16)
NMS_IOU_THRESHOLD = 0.3

SOURCE_NONE, SOURCE_POSE, SOURCE_CROP, SOURCE_FACE, SOURCE_GIVEN = "none", "pose", "crop", "face", "given"
PERSON_CHOICES = ("prominent", "confidence")
# Where the five face points (eyes, nose, mouth corners) come from: the pose / BlazeFace models as they
# are, or RetinaFace on the official head crop (face_points.py).
FACE_POINT_SOURCES = ("blazeface", "retinaface")


def require_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices`; a ValueError naming the setting otherwise."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value

# Names the rules that turn an image into keypoints (detector models, fallbacks, thresholds): a keypoint
# cache or a model folder built under other rules is detected again rather than reused.
KEYPOINT_RULES_VERSION = 2


@dataclass
class KeypointResult:
    """What a detector found in one square image.

    Attributes:
        keypoints: (19, 2) float32, normalised to the square, -1 where missing.
        person_boxes: (P, 4) float32 normalised xyxy boxes of the people seen, most prominent first.
        chosen_person: index into `person_boxes` of the person the keypoints belong to, -1 if none.
        source: "pose" (body detector), "crop" (person-crop fallback), "face" (face fallback), "none",
            or "given" (passed by the user).
        score: the detection score of the person (BlazePose's person detector) or of the face (BlazeFace)
            the keypoints belong to; None where the detector gives none.
    """

    keypoints: np.ndarray = field(default_factory=empty_keypoints)
    person_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    chosen_person: int = -1
    source: str = SOURCE_NONE
    score: float | None = None

    @property
    def num_people(self) -> int:
        return len(self.person_boxes)

    @property
    def is_weak_lone_face(self) -> bool:
        return is_weak_lone_face(self.source, self.score)

    @property
    def shows_too_little(self) -> bool:
        return shows_too_little(self.keypoints)


def is_weak_lone_face(source: str, score: float | None) -> bool:
    """A face found without a body (`source` "face"), scored below what the people search asks of one
    (FACE_ONLY_MIN_SCORE): evidence of a person too weak for the tools, which score only people (flowers,
    gift-box prints and animal faces reach 0.50-0.75 with BlazeFace). A score of None or NaN (a detector
    that gives none) is not judged."""
    return source == SOURCE_FACE and score is not None and bool(score < FACE_ONLY_MIN_SCORE)


def shows_too_little(keypoints: np.ndarray) -> bool:
    """Something found, but fewer than MIN_PERSON_POINTS keypoints of it (people_detection.py): too little
    of a person for the tools to score."""
    return 0 < int(visible(keypoints).sum()) < MIN_PERSON_POINTS


def sees_somebody(keypoints: np.ndarray, source: str, score: float | None) -> bool:
    """A detection that shows a person: at least MIN_PERSON_POINTS keypoints, and not a face alone too weak
    to count (`is_weak_lone_face`). The small-person cut and `embed_people` ask it of a person's own frame."""
    return bool(visible(keypoints).any()) and not shows_too_little(keypoints) and not is_weak_lone_face(source, score)


@runtime_checkable
class KeypointDetector(Protocol):
    """Anything with ``detect(square_rgb_uint8) -> KeypointResult`` can replace the default detector."""

    def detect(self, image: np.ndarray) -> KeypointResult: ...


def _interpreter_class() -> type:
    # Imported here so the processor works without ai_edge_litert when keypoints are passed in.
    try:
        return importlib.import_module("ai_edge_litert.interpreter").Interpreter
    except ImportError as error:
        raise DetectorNotAvailableError(
            "The keypoint detector needs the `ai-edge-litert` package (pip install ai-edge-litert), "
            "or pass precomputed `keypoints=` to the processor."
        ) from error


@contextlib.contextmanager
def _native_stderr_hidden():
    """Hide what native code writes to file descriptor 2 meanwhile (LiteRT's C++ "Created TensorFlow Lite
    XNNPACK delegate for CPU" line on every interpreter); $SAPIENSID_VERBOSE=1 shows it."""
    if os.environ.get("SAPIENSID_VERBOSE", "") not in ("", "0"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _TfliteModel:
    """One .tflite model with a single float input, returning its outputs by tensor name."""

    def __init__(self, path: Path, num_threads: int | None):
        self._interpreter = _interpreter_class()(model_path=str(path), num_threads=num_threads)
        with _native_stderr_hidden():
            self._interpreter.allocate_tensors()
        self._input_index = self._interpreter.get_input_details()[0]["index"]
        self._outputs = {detail["name"]: detail["index"] for detail in self._interpreter.get_output_details()}

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self._interpreter.set_tensor(self._input_index, np.ascontiguousarray(batch, dtype=np.float32))
        self._interpreter.invoke()
        return {name: self._interpreter.get_tensor(index).copy() for name, index in self._outputs.items()}


@dataclass
class _Person:
    score: float
    roi: Roi
    upper_body_box: np.ndarray

    @property
    def prominence(self) -> float:
        return self.roi.size**2 * self.score


def _upper_body_box(center: np.ndarray, scale_point: np.ndarray) -> np.ndarray:
    half = float(np.hypot(*(scale_point - center)))
    return np.clip(np.concatenate([center - half, center + half]), 0.0, 1.0).astype(np.float32)


def _model_input(image: np.ndarray, size: int, value_range: tuple[float, float]) -> np.ndarray:
    resized = np.asarray(
        Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32
    )
    low, high = value_range
    return (resized * ((high - low) / 255.0) + low)[None]


def rank_people(people: list[_Person], person_choice: str) -> list[_Person]:
    """People in the order the landmark model tries them (`person_choice`, see BlazePoseDetector)."""
    if person_choice == "confidence":
        return sorted(people, key=lambda person: -person.score)
    return sorted(people, key=lambda person: -person.prominence)


class BlazePoseDetector:
    """MediaPipe BlazePose Full with a BlazeFace short-range face fallback (see the module docstring).

    Args:
        cache_dir: directory with the .tflite files (default: $SAPIENSID_DETECTOR_DIR or
            ~/.cache/sapiensid_hf/detector; fill it with `sapiensid download-detector`).
        min_detection_confidence: person / face detection score threshold.
        min_presence_confidence: landmark model pose-presence threshold.
        min_keypoint_confidence: a landmark is kept when its visibility and presence both reach this.
        face_fallback: run BlazeFace when the pose models find nobody.
        person_crop_fallback: take a tall image in which the person detector finds nobody as a crop of
            one person (see the module docstring); False restores the scene-only rules of version 1.
        crop_min_aspect: least height / width of the trimmed image for the person-crop fallback.
        crop_min_detection_confidence: least person-detector score on the cleaned crop.
        crop_min_body_points: least confident body points (of 12) to accept the crop's landmarks.
        max_landmark_attempts: people tried, most prominent first, until the landmark model confirms one.
        num_threads: threads for each model (None: the runtime's default).
        person_choice: which of several people the keypoints describe: "prominent" (default: largest
            body-ROI area x detection score, so the person the photo is about wins over a confident
            bystander) or "confidence" (the highest detection score alone: the official aligner's rule
            for its YOLOv8-pose detections). Faces found by the fallback follow the same rule.
        face_points: "blazeface" (default: the five face points as BlazePose gives them, and BlazeFace's
            nose and eyes, without mouth corners, when nobody is found) or "retinaface" (the official
            aligner's rule: RetinaFace on the square head crop, or on the whole image when nobody is
            found, gives all five; below face score 0.5 they are dropped; see face_points.py).
        pedestrian_search: `detect_people` also looks for upright people by their silhouette (OpenCV's
            HOG people detector, hog_pedestrians.py), which finds pedestrians seen from behind; the
            single-person `detect` never uses it.
    """

    def __init__(
        self,
        cache_dir: str | PathLike | None = None,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_keypoint_confidence: float = 0.5,
        face_fallback: bool = True,
        max_landmark_attempts: int = 3,
        num_threads: int | None = None,
        person_crop_fallback: bool = True,
        crop_min_aspect: float = 1.25,
        crop_min_detection_confidence: float = 0.1,
        crop_min_body_points: int = 4,
        person_choice: str = "prominent",
        face_points: str = "blazeface",
        pedestrian_search: bool = True,
    ):
        self.person_choice = require_choice("person_choice", person_choice, PERSON_CHOICES)
        self.face_points = require_choice("face_points", face_points, FACE_POINT_SOURCES)
        self._five_points = RetinaFaceFivePoints(cache_dir, num_threads) if face_points == "retinaface" else None
        paths = locate_detector_files(cache_dir)
        self.min_detection_confidence = min_detection_confidence
        self.min_presence_confidence = min_presence_confidence
        self.min_keypoint_confidence = min_keypoint_confidence
        self.face_fallback = face_fallback
        self.max_landmark_attempts = max_landmark_attempts
        self.person_crop_fallback = person_crop_fallback
        self.crop_min_aspect = crop_min_aspect
        self.crop_min_detection_confidence = crop_min_detection_confidence
        self.crop_min_body_points = crop_min_body_points
        self.pedestrian_search = pedestrian_search
        self._pose_detector = _TfliteModel(paths[POSE_DETECTION.filename], num_threads)
        self._pose_landmarker = _TfliteModel(paths[POSE_LANDMARK_FULL.filename], num_threads)
        self._face_detector = _TfliteModel(paths[FACE_DETECTION_SHORT_RANGE.filename], num_threads)
        self._pose_anchors = ssd_anchor_centers(POSE_DETECTOR_INPUT, POSE_DETECTOR_STRIDES)
        self._face_anchors = ssd_anchor_centers(FACE_DETECTOR_INPUT, FACE_DETECTOR_STRIDES)
        self._lock = threading.Lock()  # a litert interpreter must not run two calls at once

    def detect(self, image: np.ndarray) -> KeypointResult:
        _require_square(image)
        with self._lock:
            result = self._body_keypoints(image)
            if self._five_points is not None:
                return self._official_face_points(image, result)
            if result is None and self.face_fallback:
                result = self._blazeface_points(image)
            return result if result is not None else KeypointResult()

    def detect_people(self, image: np.ndarray) -> list[FoundPerson]:
        """Every person in the square image, most prominent first (see people_detection.py): bodies from
        the whole square and its tiles, upright people found by their silhouette (hog_pedestrians.py;
        `pedestrian_search`), then faces without a body. A tall crop of one person in which
        nobody is found gets the person-crop fallback, as in `detect`. Face points are BlazePose's /
        BlazeFace's whatever `face_points` says (the multi-person search has no RetinaFace step)."""
        _require_square(image)
        with self._lock:
            pixels = _as_pixels(image)
            bounds = content_bounds(image)
            content = bounds.normalized_box(image.shape[0]) if bounds is not None else np.array([0, 0, 1, 1])
            body_candidates: list[Candidate] = []
            face_candidates: list[Candidate] = []
            for window_index, window in enumerate(search_windows()):
                rows, columns = window.pixels(image.shape[0])
                view = np.ascontiguousarray(image[rows, columns])
                for person in self._find_people(view, min(WEAK_BODY_SCORE, self.min_detection_confidence)):
                    roi = window.roi_to_square(person.roi)
                    body_candidates.append(Candidate(window_index, person.score, roi=roi))
                if self.face_fallback:
                    found = self._find_faces(view)
                    boxes, points = window.box_to_square(found.boxes), window.box_to_square(found.keypoints)
                    for index in range(len(found)):
                        face = Candidate(window_index, float(found.scores[index]), box=boxes[index], points=points[index])
                        face_candidates.append(face)
            bodies: list[FoundPerson] = []
            for group in confirmed_groups(body_candidates, same_body_candidate, self.min_detection_confidence):
                best = max(group, key=lambda candidate: candidate.score)
                keypoints, _, off_person = self._landmark_fit(pixels, best.roi)
                if keypoints is None:
                    continue
                keypoints = drop_outside(keypoints, tuple(content))  # points on the padding
                if is_plausible_person(keypoints, self.crop_min_body_points):
                    bodies.append(FoundPerson(keypoints, keypoint_box(keypoints), best.score, SOURCE_POSE, off_person))
            faces: list[FoundPerson] = []
            for group in confirmed_groups(face_candidates, same_face_candidate):
                best = max(group, key=lambda candidate: candidate.score)
                if best.score < FACE_ONLY_MIN_SCORE:
                    continue
                keypoints = from_blazeface(best.points)
                faces.append(FoundPerson(keypoints, face_person_box(best.box), best.score, SOURCE_FACE))
            people = merge_finds(bodies)
            if self.pedestrian_search:
                people += self._pedestrians(pixels, image, tuple(content), people)
            people += merge_finds([face for face in faces if not face_has_body(face.box, people)])
            if not people and self.person_crop_fallback:
                crop = self._person_crop(image)
                if crop is not None:
                    people = [FoundPerson(crop.keypoints, crop.person_boxes[0], 1.0, SOURCE_CROP)]
            people = [without_points_off_person(person) for person in people]
            return most_prominent_first(people)

    def _body_keypoints(self, image: np.ndarray) -> KeypointResult | None:
        people = self._find_people(image, self.min_detection_confidence)
        if people:
            pixels = _as_pixels(image)
            boxes = np.stack([person.upper_body_box for person in people])
            for index, person in enumerate(people[: self.max_landmark_attempts]):
                keypoints = self._landmarks(pixels, person.roi)
                if keypoints is not None:
                    return KeypointResult(keypoints, boxes, index, SOURCE_POSE, person.score)
        if self.person_crop_fallback:
            return self._person_crop(image)
        return None

    def _blazeface_points(self, image: np.ndarray) -> KeypointResult | None:
        faces = self._find_faces(image)
        if not len(faces):
            return None
        rank = faces.scores if self.person_choice == "confidence" else _box_areas(faces.boxes) * faces.scores
        order = np.argsort(-rank, kind="stable")
        boxes = np.clip(faces.boxes[order], 0.0, 1.0).astype(np.float32)
        score = float(faces.scores[order[0]])
        return KeypointResult(from_blazeface(faces.keypoints[order[0]]), boxes, 0, SOURCE_FACE, score)

    def _official_face_points(self, image: np.ndarray, result: KeypointResult | None) -> KeypointResult:
        if result is None and not self.face_fallback:
            return KeypointResult()
        return official_face_points(self._five_points, image, result)

    def _person_crop(self, image: np.ndarray) -> KeypointResult | None:
        bounds = content_bounds(image)
        if bounds is None or not is_person_shaped(bounds, self.crop_min_aspect):
            return None
        cleaned = clean_square(image, bounds)
        if not self._find_people(cleaned, self.crop_min_detection_confidence):
            return None
        keypoints = self._landmarks(_as_pixels(cleaned), crop_roi_of(bounds, image.shape[0], POSE_ROI_SCALE))
        if keypoints is None or visible(keypoints)[list(BODY_POINTS)].sum() < self.crop_min_body_points:
            return None
        box = bounds.normalized_box(image.shape[0])[None]
        return KeypointResult(keypoints, box, 0, SOURCE_CROP)

    def _find_people(self, image: np.ndarray, min_score: float) -> list[_Person]:
        outputs = self._pose_detector(_model_input(image, POSE_DETECTOR_INPUT, (-1.0, 1.0)))
        detections = decode_detections(
            outputs["Identity"][0],
            outputs["Identity_1"][0, :, 0],
            self._pose_anchors,
            POSE_DETECTOR_INPUT,
            num_keypoints=4,
            min_score=min_score,
        )
        detections = weighted_nms(detections, NMS_IOU_THRESHOLD)
        people = [
            _Person(
                score=float(detections.scores[index]),
                roi=alignment_roi(points[0], points[1], POSE_ROI_SCALE, math.pi / 2),
                upper_body_box=_upper_body_box(points[2], points[3]),
            )
            for index, points in enumerate(detections.keypoints)
        ]
        return rank_people(people, self.person_choice)

    def _pedestrians(
        self, pixels: torch.Tensor, image: np.ndarray, content: tuple[float, ...], found: list[FoundPerson]
    ) -> list[FoundPerson]:
        """Upright people the face-anchored search missed (seen from behind, blurred): HOG boxes
        (hog_pedestrians.py) fitted by the landmark model, kept when the fit is a plausible body that is
        nobody in `found`. Their score is the landmark model's presence."""
        people: list[FoundPerson] = []
        for roi in pedestrian_rois(image):
            keypoints, presence, off_person = self._landmark_fit(pixels, roi)
            if keypoints is None:
                continue
            keypoints = drop_outside(keypoints, content)
            if not is_plausible_person(keypoints, self.crop_min_body_points):
                continue
            person = FoundPerson(keypoints, keypoint_box(keypoints), presence, SOURCE_POSE, off_person)
            if not any(is_same_person(person, other) for other in found + people):
                people.append(person)
        return people

    def _landmarks(self, pixels: torch.Tensor, roi: Roi) -> np.ndarray | None:
        return self._landmark_fit(pixels, roi)[0]

    def _landmark_fit(self, pixels: torch.Tensor, roi: Roi) -> tuple[np.ndarray | None, float, np.ndarray]:
        """(the 19 keypoints of the person in the ROI, or None below the presence threshold; the presence;
        (19,) bool: arm and leg points off the landmark model's own person segmentation)."""
        crop = crop_roi(pixels, roi, POSE_LANDMARK_INPUT).numpy()
        outputs = self._pose_landmarker(crop[None])
        person_presence = float(outputs["Identity_1"].ravel()[0])
        if person_presence < self.min_presence_confidence:
            return None, person_presence, np.zeros(NUM_KEYPOINTS, dtype=bool)
        points, visibility, presence = decode_landmarks(
            outputs["Identity"][0], outputs["Identity_3"][0], POSE_LANDMARK_INPUT, POSE_NUM_LANDMARKS
        )
        confident = (visibility >= self.min_keypoint_confidence) & (presence >= self.min_keypoint_confidence)
        keypoints = from_blazepose(project_from_roi(points, roi), confident)
        limbs = list(POSE_LIMB_LANDMARKS)
        off_person = np.zeros(len(points), dtype=bool)
        off_person[limbs] = ~on_silhouette(points[limbs], outputs["Identity_2"][0, :, :, 0], SILHOUETTE_RADIUS)
        return keypoints, person_presence, off_person[list(BLAZEPOSE_INDEX)]

    def _find_faces(self, image: np.ndarray) -> Detections:
        outputs = self._face_detector(_model_input(image, FACE_DETECTOR_INPUT, (-1.0, 1.0)))
        detections = decode_detections(
            outputs["regressors"][0],
            outputs["classificators"][0, :, 0],
            self._face_anchors,
            FACE_DETECTOR_INPUT,
            num_keypoints=6,
            min_score=self.min_detection_confidence,
        )
        return weighted_nms(detections, NMS_IOU_THRESHOLD)


def official_face_points(
    five_points: RetinaFaceFivePoints, image: np.ndarray, result: KeypointResult | None
) -> KeypointResult:
    """The official aligner's face rule on a body detector's `result` (None: nobody found): RetinaFace's
    five points from the square head crop of the found person, or from the whole image; a face below the
    score threshold drops them. Shared by every body detector that offers `face_points="retinaface"`."""
    if result is not None and visible(result.keypoints).any():
        head = square_head_box(result.keypoints)
        face = five_points.face_in(image, head) if head is not None else None
        keypoints = with_face_points(result.keypoints, face)
        return KeypointResult(keypoints, result.person_boxes, result.chosen_person, result.source, result.score)
    face = five_points.face_in(image, np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32))
    keypoints = with_face_points(empty_keypoints(), face)
    if not visible(keypoints).any():
        return KeypointResult()
    return KeypointResult(keypoints, np.clip(face.box, 0.0, 1.0)[None].astype(np.float32), 0, SOURCE_FACE)


def _require_square(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square RGB uint8 image (S, S, 3), got {image.dtype} {image.shape}")


def _as_pixels(image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 -> (3, S, S) float in [0, 1], what `crop_roi` samples."""
    return torch.tensor(image).permute(2, 0, 1).float().div_(255.0)


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
