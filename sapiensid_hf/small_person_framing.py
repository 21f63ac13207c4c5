"""The single-person path cuts a person who fills little of the photo, as the training photos were framed.

The model learnt people from pictures framed around them: pedestrian crops (CUHK03, Con-ReID) and LFW
face photos. Given a photo in which the person is small (a standing person in a street or room photo, a
face in a wide shot), it reads mostly background and the embedding says little about who it is: a
development person's photo pasted on a wall, covering 0.15 of the picture, is found by top-1 search 0.27x
(pedestrians) and 0.10x (faces) as often from the whole picture as from the photo itself, 0.91x and 0.95x
when cut as `embed_people` cuts a person (benchmarks/bench_small_person.py, docs/people.md).

So `SapiensIDPipeline.embed` (every tool's single-person path) looks at the frame the chosen person would
be cut to (`Person.crop_box`, from the keypoints the processor found): when it covers less than
`SMALL_PERSON_SHARE` of the photo, the person is embedded as `embed_people` embeds a person, from three
cuts of that frame, the face framed by OpenCV's face box where found. A photo framed like the training
photos (a portrait, a face photo, a pedestrian crop) is embedded as it is: its frame covers most of it,
and the photo's own framing is closer to the training photos' than any cut predicted from keypoints; so
is a picture the processor itself took for a crop of one person (FRAMED_SOURCES).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .processing.image_decoding import describe_input, load_rgb
from .processing.keypoint_layout import BODY_POINTS, visible
from .processing.people_in_image import DEFAULT_MIN_PERSON_SIZE, PeopleInImage, Person, with_face_boxes
from .processing.photo_cuts import to_photo_pixels
from .processing.square_resampling import SquarePadding

# A person is cut from the photo when the frame they would be cut to covers less than this share of it.
# LFW fold-7 photos' frames cover 0.41 or more (median 0.81), pedestrian crops' 0.98 at the median
# (benchmarks/bench_small_person.py, which also counts the development photos this would cut).
SMALL_PERSON_SHARE = 0.5
# People the detectors found in the picture; "crop" (the person-crop fallback decided the picture is a crop
# of one person), "prior" (the standing-person prior) and "given" keypoints are left as they are.
FRAMED_SOURCES = ("pose", "face")
SOURCE = "processor"  # the person comes from the single-person detection, not from detect_people


def chosen_person(keypoints: np.ndarray, box: np.ndarray, face_found: bool, height: int, width: int) -> Person:
    """The processor's chosen person (keypoints and box normalised to the padded square) in the pixels of
    a `height` x `width` photo."""
    padding = SquarePadding.of(height, width)
    pixels = to_photo_pixels(keypoints, padding)
    corners = to_photo_pixels(np.asarray(box, dtype=np.float32).reshape(2, 2), padding)
    (x0, y0), (x1, y1) = np.clip(corners, 0, [width, height])
    body_found = bool(visible(pixels)[list(BODY_POINTS)].any())
    return Person((float(x0), float(y0), float(x1), float(y1)), pixels, 1.0, body_found, bool(face_found), SOURCE)


def frame_shares(features: Any) -> np.ndarray:
    """(B,) the share of each photo that its chosen person's frame covers (NaN where nobody was found),
    from the processor's outputs alone: the photo's proportions come from its `pixel_mask`, so nothing is
    decoded again."""
    masks = np.asarray(features["pixel_mask"])
    shares = np.full(len(masks), np.nan)
    for row, mask in enumerate(masks):
        if not bool(features["person_found"][row]):
            continue
        # The photo in units of the square's side: its frame's share does not depend on the pixel count.
        side = 10_000
        height = max(1, round(side * float(mask.any(axis=1).mean())))
        width = max(1, round(side * float(mask.any(axis=0).mean())))
        keypoints = np.asarray(features["keypoints"][row], dtype=np.float32)
        person = chosen_person(keypoints, features["person_box"][row], features["face_found"][row], height, width)
        left, top, right, bottom = person.crop_box(width, height)
        shares[row] = (right - left) * (bottom - top) / (width * height)
    return shares


def small_people(features: Any) -> np.ndarray:
    """(B,) bool: the rows whose person `embed` cuts from the photo (the module docstring, SMALL_PERSON_SHARE)."""
    frames = frame_shares(features)
    found_in_scene = np.isin(np.asarray(features["keypoint_source"]), FRAMED_SOURCES)
    with np.errstate(invalid="ignore"):
        return (frames < SMALL_PERSON_SHARE) & found_in_scene


def embed_small_people(
    pipeline: Any, images: Sequence[Any], indices: Sequence[int], result: Any, features: Any, flip: bool, batch_size: int = 8
) -> Any:
    """`result` (an EmbeddingResult of `images[i]` for i in `indices`) with the rows whose person is small
    in the photo embedded from that person's cuts instead, and `framed` set on them."""
    small = np.flatnonzero(small_people(features))
    if small.size == 0:
        return result
    cut_rows, photos, detections = [], [], []
    for row in small:
        image = images[indices[row]]
        rgb = load_rgb(image, describe_input(image, indices[row]), pipeline.processor.max_image_pixels)
        height, width = rgb.shape[:2]
        person = chosen_person(result.keypoints[row], result.person_box[row], result.face_found[row], height, width)
        left, top, right, bottom = person.crop_box(width, height)
        if min(right - left, bottom - top) < DEFAULT_MIN_PERSON_SIZE:
            continue  # a frame too small to recognise anyone in (or a bad keypoint fit): the photo as it is
        cut_rows.append(row)
        photos.append(rgb)
        detections.append(with_face_boxes(PeopleInImage([person], width, height, found=1), rgb))
    if not cut_rows:
        return result
    # One person a photo, so one row a photo, in order: the batch's cuts go through the model together.
    people = pipeline.embed_people(photos, flip=flip, batch_size=batch_size, detections=detections)
    embeddings, framed = result.embeddings.copy(), result.framed.copy()
    embeddings[cut_rows] = people.embeddings
    framed[cut_rows] = True
    return replace(result, embeddings=embeddings, framed=framed)


__all__ = ["FRAMED_SOURCES", "SMALL_PERSON_SHARE", "chosen_person", "embed_small_people", "frame_shares", "small_people"]
