"""Every person in a photo, in the photo's pixels: what `SapiensIDImageProcessor.detect_people` returns.

The detector searches its square copy of the photo (people_detection.py); here its finds are mapped to
the photo's pixels, people below a minimum size are skipped and counted, and the list is capped. Each
person also gets the crop a single-person embedding is made from: the person with a margin, cut from
the full-resolution photo, framed like the pictures the model was trained on (a pedestrian crop for a
whole body; for a person seen without legs, the frame of an LFW photo of their face: OpenCV's face box
widened as LFW's photos were, face_frame.py, or its prediction from the keypoints).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .face_frame import PHOTO_SIDE_PER_BOX_SIDE, cascade_face_box, photo_frame_of_box
from .keypoint_layout import (
    EYE_1,
    EYE_2,
    LEFT_ANKLE,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    MOUTH_1,
    MOUTH_2,
    RIGHT_ANKLE,
    RIGHT_HIP,
    RIGHT_SHOULDER,
    visible,
)
from .people_detection import FoundPerson
from .photo_cuts import pixel_keypoints_in_crop, to_photo_pixels
from .square_resampling import SquarePadding

DEFAULT_MAX_PEOPLE = 20
# Below this many pixels (the longer side of the person's box) nobody can be recognised: skipped, counted.
DEFAULT_MIN_PERSON_SIZE = 48
BODY_CROP_MARGIN = 0.1  # of the box's side, on each side, for a whole body without shoulders or ankles
# The framing of the model's pedestrian photos (CUHK03 and Con-ReID crops), measured on the detected
# keypoints of the 7,431 training crops with a shoulder and an ankle: with the body height from the
# shoulders to the ankles, the crop reaches 0.323 of it above the shoulders and 0.166 below the ankles,
# and is 0.518 of it wide, centred on the shoulders and hips (alike with and without a face seen).
PEDESTRIAN_FRAME_ABOVE_SHOULDERS = 0.323
PEDESTRIAN_FRAME_BELOW_ANKLES = 0.166
PEDESTRIAN_FRAME_WIDTH = 0.518
# A frame narrower or shorter than this share of the person's box comes from a bad keypoint fit.
MIN_FRAME_SHARE = 0.25
# A head and shoulders: the box hugs the face and shoulder points, and a portrait photo shows more
# around them (hair, neck, background); measured on LFW scenes in benchmarks/bench_people.py.
PORTRAIT_CROP_MARGIN = 0.25
FACE_CROP_SCALE = 2.0  # an LFW photo is about twice as wide as the face in it
# The framing of the model's face photos (LFW), measured on the detected keypoints of the LFW training
# photos (4,892 with both eyes and both mouth corners): the face size sqrt(eye distance^2 + eye-to-mouth
# distance^2) is 0.236 of the photo's side, the eye distance alone 0.164, and the eyes' midpoint sits at
# (0.50, 0.456). The face size varies less from photo to photo than the eye distance (log-std 0.106
# against 0.144: a turned head narrows the eyes, not the eye-to-mouth height), so it sets the frame when
# the mouth is seen. A head seen without legs is cut the same way.
FACE_FRAME_FACE_SIZE = 0.236
FACE_FRAME_EYE_DISTANCE = 0.164
FACE_FRAME_EYES_AT = (0.50, 0.456)
# The keypoints' face frame is then cut 10 % tighter about its centre. The frame's side misses the photo's
# by ~10 % (the log-std above), and what a too-wide frame adds (a neighbour, the wall behind a pasted photo)
# moves the embedding more than the edge a too-tight one cuts. Chosen on scenes of LFW *training* people
# (benchmarks/bench_people.py's composition, 150 canvases, 449 queries: top-1 0.247 at 1.0, 0.283 / 0.272 /
# 0.290 at 0.85 / 0.90 / 0.95); pedestrian frames gained nothing there (0.286 at 1.0, 0.289 at 0.95).
FACE_FRAME_TIGHTENING = 0.9
# Where OpenCV's face detector finds the face's box (face_frame.py: LFW's own framing rule), the frame is
# that box widened as LFW widened it, not tightened: its side misses the photo's by less (robust log-std
# 0.06, benchmarks/bench_face_frame.py). On the scenes of LFW training people above (100 canvases, 614
# queries, people to the hips framed as faces too), top-1 0.336 with the keypoint frame tightened by 0.9,
# 0.396 with the box frame, 0.397 / 0.391 with it widened by 1.05 / 1.1 (before people to the hips were
# framed as faces: 0.352 with the box frame, 0.331 / 0.313 with it tightened by 0.95 / 0.9).
# A person is embedded from three frames of the same centre, 5 % tighter, as framed and 5 % wider, their
# embeddings averaged (sapiensid_hf/people_embedding.py): no keypoint rule reproduces a photo's cut to 5 %,
# and the shipped model moves an embedding a long way for a 5 % reframing (benchmarks/bench_framing.py), so
# the average is closer to the person than any one frame. Chosen on scenes of *training* people
# (benchmarks/bench_people.py's composition, 150 canvases a kind): pedestrians 605 queries, top-1 0.286 with
# one frame, 0.309 with these three (0.299 with 0.90 / 1.0 / 1.10, 0.302 with five from 0.90 to 1.10);
# faces 449 queries, 0.272 with one, 0.307 with these three (0.316 / 0.318).
PERSON_FRAME_SCALES = (0.95, 1.0, 1.05)
# The framing rule above, as people files and per-person indexes record it: faces framed around OpenCV's face
# box where it is found. Files and indexes made before 2026-12-04 framed every face from its keypoints and
# lack the record; `search` notes it (they still search, a little less well).
PERSON_FRAMING = "face-box"


@dataclass
class Person:
    """One person in a photo.

    Attributes:
        box: (x0, y0, x1, y1) in the photo's pixels, around the visible person.
        keypoints: (19, 2) float32 in the photo's pixels, -1 where missing.
        score: the detector's score for this person (the face detector's for a face alone).
        body_found: body points were found (not only a face).
        face_found: at least two of the face points were found.
        source: "pose" (the body detector), "face" (a face without a body) or "crop" (a photo that is a
            crop of one person).
        face_box: (x0, y0, x1, y1) in the photo's pixels, the face's box from OpenCV's face detector when
            `with_face_boxes` found one (face_frame.py): it frames a face without legs; None otherwise.
    """

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float
    body_found: bool
    face_found: bool
    source: str
    face_box: tuple[float, float, float, float] | None = None

    @property
    def whole_body(self) -> bool:
        """Hips, knees or ankles were found: more than a head and shoulders."""
        return bool(visible(self.keypoints)[LEFT_HIP:].any())

    @property
    def legs_seen(self) -> bool:
        """Knees or ankles were found: a body seen down to its legs, framed as a body, not as a face."""
        return bool(visible(self.keypoints)[LEFT_KNEE:].any())

    def crop_box(self, width: int, height: int, scale: float = 1.0) -> tuple[int, int, int, int]:
        """The part of the photo this person is embedded from (integer pixels, inside the photo); `scale`
        widens (> 1) or tightens (< 1) it about its centre (PERSON_FRAME_SCALES)."""
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        x0, y0, x1, y1 = self.box
        frame = self._pedestrian_frame()
        if frame is None and not self.legs_seen:
            frame = self._face_frame()
        if frame is not None and self._frame_fits(frame, width, height):
            x0, y0, x1, y1 = frame
        elif self.body_found:
            share = BODY_CROP_MARGIN if self.whole_body else PORTRAIT_CROP_MARGIN
            margin = share * max(x1 - x0, y1 - y0)
            x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
        else:
            center_x, center_y = (x0 + x1) / 2, (y0 + y1) / 2
            half = FACE_CROP_SCALE * max(x1 - x0, y1 - y0) / 2
            x0, y0, x1, y1 = center_x - half, center_y - half, center_x + half, center_y + half
        if scale != 1.0:
            center_x, center_y = (x0 + x1) / 2, (y0 + y1) / 2
            half_width, half_height = scale * (x1 - x0) / 2, scale * (y1 - y0) / 2
            x0, y0, x1, y1 = center_x - half_width, center_y - half_height, center_x + half_width, center_y + half_height
        left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
        return left, top, max(right, left + 1), max(bottom, top + 1)

    def _frame_fits(self, frame: tuple[float, float, float, float], width: int, height: int) -> bool:
        """A frame from a bad keypoint fit (an ankle just below the shoulders, eyes a pixel apart) would
        cut a sliver of the person: inside the photo, a frame must be at least MIN_FRAME_SHARE of the
        person's box on each side, or the box with its margin is used instead."""
        x0, y0, x1, y1 = max(frame[0], 0.0), max(frame[1], 0.0), min(frame[2], float(width)), min(frame[3], float(height))
        box_side = max(self.box[2] - self.box[0], self.box[3] - self.box[1])
        return min(x1 - x0, y1 - y0) >= MIN_FRAME_SHARE * box_side

    def _pedestrian_frame(self) -> tuple[float, float, float, float] | None:
        """The box a re-identification crop of this person would be (PEDESTRIAN_FRAME_*), or None without
        a shoulder and an ankle."""
        shown = visible(self.keypoints)
        shoulders = [index for index in (LEFT_SHOULDER, RIGHT_SHOULDER) if shown[index]]
        ankles = [index for index in (LEFT_ANKLE, RIGHT_ANKLE) if shown[index]]
        if not shoulders or not ankles:
            return None
        shoulder_y, ankle_y = float(self.keypoints[shoulders, 1].mean()), float(self.keypoints[ankles, 1].mean())
        body_height = ankle_y - shoulder_y
        if body_height <= 0:
            return None
        trunk = [index for index in (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP) if shown[index]]
        center_x = float(self.keypoints[trunk, 0].mean())
        half_width = PEDESTRIAN_FRAME_WIDTH * body_height / 2
        return (
            center_x - half_width,
            shoulder_y - PEDESTRIAN_FRAME_ABOVE_SHOULDERS * body_height,
            center_x + half_width,
            ankle_y + PEDESTRIAN_FRAME_BELOW_ANKLES * body_height,
        )

    def _face_frame(self) -> tuple[float, float, float, float] | None:
        """The square an LFW photo of this face would be: around the face's detector box when there is one,
        else from the keypoints, cut FACE_FRAME_TIGHTENING tighter about its centre; None without both eyes."""
        if self.face_box is not None:
            return photo_frame_of_box(self.face_box)
        frame = self.keypoint_face_frame()
        if frame is None:
            return None
        x0, y0, x1, y1 = frame
        center_x, center_y, half = (x0 + x1) / 2, (y0 + y1) / 2, FACE_FRAME_TIGHTENING * (x1 - x0) / 2
        return center_x - half, center_y - half, center_x + half, center_y + half

    def keypoint_face_frame(self) -> tuple[float, float, float, float] | None:
        """The square an LFW photo of this face would be, predicted from the eyes and mouth (FACE_FRAME_*),
        or None without both eyes."""
        eyes, mouth = self.keypoints[[EYE_1, EYE_2]], self.keypoints[[MOUTH_1, MOUTH_2]]
        if not visible(eyes).all():
            return None
        center_x, center_y = eyes.mean(axis=0)
        eye_distance = float(np.linalg.norm(eyes[0] - eyes[1]))
        if visible(mouth).all():
            eye_to_mouth = float(np.linalg.norm(eyes.mean(axis=0) - mouth.mean(axis=0)))
            side = float(np.hypot(eye_distance, eye_to_mouth)) / FACE_FRAME_FACE_SIZE
        else:
            side = eye_distance / FACE_FRAME_EYE_DISTANCE
        if side <= 0:
            return None
        middle_x = center_x + (0.5 - FACE_FRAME_EYES_AT[0]) * side
        middle_y = center_y + (0.5 - FACE_FRAME_EYES_AT[1]) * side
        return middle_x - side / 2, middle_y - side / 2, middle_x + side / 2, middle_y + side / 2


@dataclass
class PeopleInImage:
    """The people found in one photo, most prominent first.

    Attributes:
        people: at most `max_people` of them.
        width, height: the photo's size in pixels.
        found: how many people the detector found, before the size limit and the cap.
        too_small: how many of them were skipped for being smaller than `min_person_size` pixels.
        max_people: the cap this list was made with.
        unseen_in_frame: how many of them were left out because the detector, looking at the person's own
            frame, saw nobody there (`embed_people`: a find not confirmed as a person).
        face_unconfirmed: how many of them were left out because they show a face and no legs and the face
            check (face_check.py: OpenCV's YuNet) found no face about their head (`embed_people`).
    """

    people: list[Person] = field(default_factory=list)
    width: int = 0
    height: int = 0
    found: int = 0
    too_small: int = 0
    max_people: int = DEFAULT_MAX_PEOPLE
    unseen_in_frame: int = 0
    face_unconfirmed: int = 0

    @property
    def beyond_cap(self) -> int:
        """How many people were left out by the `max_people` cap alone."""
        return self.found - self.too_small - self.unseen_in_frame - self.face_unconfirmed - len(self.people)

    @property
    def cap_reached(self) -> bool:
        return self.beyond_cap > 0

    def summary(self) -> str:
        """One line for the tools to print: how many people, and what was left out and why."""
        if not self.found:
            return "nobody found"
        text = f"{len(self.people)} {'person' if len(self.people) == 1 else 'people'}"
        left_out = []
        if self.too_small:
            left_out.append(f"{self.too_small} too small to recognise")
        if self.unseen_in_frame:
            left_out.append(f"{self.unseen_in_frame} not seen again in their own frame")
        if self.face_unconfirmed:
            left_out.append(f"{self.face_unconfirmed} whose face the face detector did not confirm")
        if self.cap_reached:
            left_out.append(f"{self.beyond_cap} more beyond max_people={self.max_people}")
        return text + (f" ({'; '.join(left_out)} left out)" if left_out else "")


def people_in_photo(
    finds: list[FoundPerson],
    height: int,
    width: int,
    max_people: int = DEFAULT_MAX_PEOPLE,
    min_person_size: float = DEFAULT_MIN_PERSON_SIZE,
) -> PeopleInImage:
    """The detector's finds (normalised to the padded square of a `height` x `width` photo, most prominent
    first) as people in the photo's pixels, with the size limit and the cap applied."""
    if max_people < 1:
        raise ValueError(f"max_people must be at least 1, got {max_people}")
    padding = SquarePadding.of(height, width)
    people, too_small = [], 0
    for find in finds:
        corners = to_photo_pixels(np.asarray(find.box, dtype=np.float32).reshape(2, 2), padding)
        x0, y0 = np.clip(corners[0], 0, [width, height])
        x1, y1 = np.clip(corners[1], 0, [width, height])
        if max(x1 - x0, y1 - y0) < min_person_size:
            too_small += 1
            continue
        if len(people) < max_people:
            box = (float(x0), float(y0), float(x1), float(y1))
            keypoints = to_photo_pixels(find.keypoints, padding)
            people.append(Person(box, keypoints, find.score, find.body_found, find.face_found, find.source))
    return PeopleInImage(people, width, height, len(finds), too_small, max_people)


def with_face_boxes(people: PeopleInImage, rgb: np.ndarray) -> PeopleInImage:
    """The same people, each one framed as a face (no legs seen, both eyes seen) given the box OpenCV's
    face detector finds around its eyes, where it finds one (face_frame.py). `rgb`: the (H, W, 3) uint8
    photo the people were found in."""
    framed = []
    for person in people.people:
        predicted = None if person.legs_seen else person.keypoint_face_frame()
        if predicted is not None:
            eyes = person.keypoints[[EYE_1, EYE_2]].mean(axis=0)
            expected_box_side = (predicted[2] - predicted[0]) / PHOTO_SIDE_PER_BOX_SIDE
            person = replace(person, face_box=cascade_face_box(rgb, (float(eyes[0]), float(eyes[1])), expected_box_side))
        framed.append(person)
    return replace(people, people=framed)


def keypoints_in_crop(person: Person, crop: tuple[int, int, int, int]) -> np.ndarray:
    """The person's keypoints normalised to the padded square of their crop (what the processor takes
    as `keypoints=`); points outside the crop are missing."""
    return pixel_keypoints_in_crop(person.keypoints, crop)


__all__ = [
    "DEFAULT_MAX_PEOPLE",
    "DEFAULT_MIN_PERSON_SIZE",
    "PERSON_FRAME_SCALES",
    "PERSON_FRAMING",
    "PeopleInImage",
    "Person",
    "keypoints_in_crop",
    "people_in_photo",
    "to_photo_pixels",
    "with_face_boxes",
]
