"""What the detector found, in words and pictures: the overlays and summaries of the Space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..inference import SapiensIDPipeline
from ..processing.square_resampling import detector_square
from ..processing.visualization_sapiensid import draw_people, draw_retina

OVERLAY_SIDE = 640


@dataclass
class Detection:
    """What the processor found in one image (one row of an `EmbeddingResult`)."""

    keypoints: np.ndarray
    roi_boxes: np.ndarray
    person_box: np.ndarray
    person_found: bool
    face_found: bool
    num_people: int

    @classmethod
    def from_result(cls, result: Any, index: int) -> Detection:
        return cls(
            keypoints=result.keypoints[index],
            roi_boxes=result.roi_boxes[index],
            person_box=result.person_box[index],
            person_found=bool(result.person_found[index]),
            face_found=bool(result.face_found[index]),
            num_people=int(result.num_people[index]),
        )

    @property
    def body_found(self) -> bool:
        return bool((self.roi_boxes[1] >= 0).all())

    def summary(self, label: str) -> str:
        if not self.person_found:
            return (
                f"{label}: no person found. The model reads a person at their face and body points, so this "
                "picture cannot be matched; use a photo where a person is clearly visible."
            )
        parts = [
            f"face {'found' if self.face_found else 'not visible'}",
            f"upper body {'found' if self.body_found else 'not visible'}",
        ]
        text = f"{label}: {', '.join(parts)}."
        if self.num_people > 1:
            text += f" {self.num_people} people seen; the most prominent one (yellow box) is used."
        if not self.face_found:
            text += " Matching on the body alone."
        return text


def render_overlay(rgb: np.ndarray, detection: Detection, grid_size: int) -> Image.Image:
    """The padded square with keypoints, ROI patch grids and the chosen person's box drawn on it."""
    square = Image.fromarray(detector_square(rgb, OVERLAY_SIDE))
    return draw_retina(
        square,
        detection.keypoints,
        detection.roi_boxes,
        grid_size,
        # The yellow box marks the person chosen among several (the legend says so); one person needs no choice.
        detection.person_box if detection.num_people > 1 else None,
        scale=1.0,
        label_points=False,
    )


def seen_words(person: Any) -> str:
    """What of a person the model saw: "face and body", "face only" or "body only, no face"."""
    if person.face_found and person.body_found:
        return "face and body"
    return "face only" if person.face_found else "body only, no face"


def people_overlay(rgb: np.ndarray, people: Sequence[Any], chosen: int | None) -> Image.Image:
    """The photo with every person's numbered box (the `chosen` one yellow), on the same white square as
    the single-person overlays."""
    picture = draw_people(rgb, people, chosen, OVERLAY_SIDE)
    square = Image.new("RGB", (OVERLAY_SIDE, OVERLAY_SIDE), (255, 255, 255))
    square.paste(picture, ((OVERLAY_SIDE - picture.width) // 2, (OVERLAY_SIDE - picture.height) // 2))
    return square


def model_grid_size(pipeline: SapiensIDPipeline) -> int:
    """Patches per side of the model's full-image grid, drawn on the overlays."""
    config = pipeline.model.config
    return config.image_size // config.patch_size
