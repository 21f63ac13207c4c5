"""A person who fills little of a photo is cut from it before it becomes the model's picture.

The model learnt people from pictures framed around them: pedestrian crops (CUHK03, Con-ReID) and LFW
face photos. Given a photo in which the person is small (a standing person in a street or room photo, a
face in a wide shot), it reads mostly background and the embedding says little about who it is: a
development person's photo pasted on a wall, covering 0.15 of the picture, is found by top-1 search 0.27x
(pedestrians) and 0.10x (faces) as often from the whole picture as from the photo itself, about 0.9x when
cut to the person's frame (benchmarks/bench_small_person.py, docs/people.md).

So, with `frame_small_people` (a model folder's rule, on in the shipped model's preprocessor_config.json),
the processor looks at the frame the chosen person would be cut to (`Person.crop_box`, from the keypoints
found on the photo): when it covers less than SMALL_PERSON_SHARE of the photo, that frame (a face framed
around OpenCV's face box where one is found) is cut from the full-resolution photo and becomes the
picture. The detector runs again on the cut, as on any picture; where it finds somebody else or nobody
there, the person's own keypoints mapped into the cut are used. A photo framed like the training photos
(a portrait, a face photo, a pedestrian crop) is left as it is: its frame covers most of it, and its own
framing is closer to the training photos' than a cut predicted from keypoints; so is a picture the
detector itself took for a crop of one person, and one whose keypoints were given (FRAMED_SOURCES).
"""

from __future__ import annotations

import logging

import numpy as np

from .detector_assets import DetectorNotAvailableError
from .keypoint_layout import BODY_POINTS, FACE_POINTS, MISSING, visible
from .people_in_image import DEFAULT_MIN_PERSON_SIZE, PeopleInImage, Person, with_face_boxes
from .photo_cuts import to_photo_pixels
from .square_resampling import SquarePadding

# A person is cut from the photo when the frame they would be cut to covers less than this share of it.
# LFW fold-7 photos' frames cover 0.41 or more (median 0.81), pedestrian crops' 0.98 at the median
# (benchmarks/bench_small_person.py, which also counts the development photos this would cut).
SMALL_PERSON_SHARE = 0.5
# People the detectors found in the picture; "crop" (the person-crop fallback decided the picture is a crop
# of one person), "prior" (the standing-person prior) and "given" keypoints are left as they are.
FRAMED_SOURCES = ("pose", "face")

logger = logging.getLogger(__name__)
_said_without_opencv = False


def chosen_person(keypoints: np.ndarray, box: np.ndarray, height: int, width: int) -> Person:
    """The detector's chosen person (keypoints and box normalised to the padded square) in the pixels of a
    `height` x `width` photo."""
    padding = SquarePadding.of(height, width)
    pixels = to_photo_pixels(keypoints, padding)
    corners = to_photo_pixels(np.asarray(box, dtype=np.float32).reshape(2, 2), padding)
    (x0, y0), (x1, y1) = np.clip(corners, 0, [width, height])
    shown = visible(pixels)
    body_found, face_found = bool(shown[list(BODY_POINTS)].any()), int(shown[list(FACE_POINTS)].sum()) >= 2
    return Person((float(x0), float(y0), float(x1), float(y1)), pixels, 1.0, body_found, face_found, "processor")


def frame_share(person: Person, height: int, width: int) -> float:
    """The share of a `height` x `width` photo that the person's frame (`Person.crop_box`) covers."""
    return box_share(person.crop_box(width, height), height, width)


def box_share(box: tuple[float, float, float, float], height: int, width: int) -> float:
    """The share of a `height` x `width` photo that the pixel box `box` (xyxy) covers."""
    left, top, right, bottom = box
    return (right - left) * (bottom - top) / (width * height)


def detected_person(keypoints: np.ndarray, box: np.ndarray, source: str, height: int, width: int) -> Person | None:
    """The detector's chosen person in the pixels of a `height` x `width` photo (`chosen_person`) when the
    detector found them in it (source in FRAMED_SOURCES, keypoints shown); None for nobody, a crop, a prior
    or given keypoints."""
    if source not in FRAMED_SOURCES or not visible(keypoints).any():
        return None
    return chosen_person(keypoints, box, height, width)


def small_person_cut(
    rgb: np.ndarray, keypoints: np.ndarray, box: np.ndarray, source: str
) -> tuple[Person, tuple[int, int, int, int]] | None:
    """(the person in the photo's pixels, the xyxy pixel box to cut them from) when the detector's chosen
    person (`keypoints`, `box` normalised to the photo's padded square, found by `source`) fills less than
    SMALL_PERSON_SHARE of the photo `rgb` (H, W, 3); None when the photo is to be used as it is (a larger
    person, nobody, a picture taken for a crop, or a frame under DEFAULT_MIN_PERSON_SIZE pixels)."""
    height, width = rgb.shape[:2]
    person = detected_person(keypoints, box, source, height, width)
    if person is None or frame_share(person, height, width) >= SMALL_PERSON_SHARE:
        return None
    # The decision is the keypoints' frame; the cut is framed as detect_people frames a person (a face
    # around OpenCV's face box), so that the cut equals what embed_people cuts for the same person.
    person = _with_face_box(person, rgb)
    left, top, right, bottom = person.crop_box(width, height)
    if min(right - left, bottom - top) < DEFAULT_MIN_PERSON_SIZE:
        return None  # too few pixels to recognise anyone in (or a bad keypoint fit): the photo as it is
    return person, (left, top, right, bottom)


def _with_face_box(person: Person, rgb: np.ndarray) -> Person:
    """The person with OpenCV's face box where it finds one; without OpenCV (a Hugging Face user of the model
    folder may lack it), the person as they are: a face is then framed from its keypoints, said once."""
    global _said_without_opencv
    height, width = rgb.shape[:2]
    try:
        return with_face_boxes(PeopleInImage([person], width, height, found=1), rgb).people[0]
    except DetectorNotAvailableError as error:
        if not _said_without_opencv:
            logger.warning("%s A small person's face is framed from its keypoints instead.", error)
            _said_without_opencv = True
        return person


def cut_points_in_photo(points: np.ndarray, cut: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., 2) points normalised to the padded square of the `cut` (xyxy pixels of a `height` x `width`
    photo) -> normalised to the photo's padded square; missing points (-1) stay missing."""
    points = np.asarray(points, dtype=np.float32)
    left, top, right, bottom = (int(value) for value in cut)
    inside = SquarePadding.of(bottom - top, right - left)
    photo = SquarePadding.of(height, width)
    pixels = points * inside.side - np.array([inside.left - left, inside.top - top], dtype=np.float32)
    mapped = (pixels + np.array([photo.left, photo.top], dtype=np.float32)) / photo.side
    return np.where(visible(points)[..., None], mapped, MISSING).astype(np.float32)


__all__ = ["FRAMED_SOURCES", "SMALL_PERSON_SHARE", "chosen_person", "box_share", "cut_points_in_photo", "detected_person", "frame_share", "small_person_cut"]
