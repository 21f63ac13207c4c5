"""Draw what the processor found: keypoints, retina ROI boxes and the retina patch grids.

The retina reads three levels, each cut into the same grid_size x grid_size cells
(grid_size = image_size // patch_size): the full image, the upper-body box and the face box. The
boxes are drawn snapped as the model snaps them (upper body to the full-image grid, face to the
upper-body grid), so the picture shows exactly the patches the model samples.
"""

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from .keypoint_layout import KEYPOINT_NAMES, MISSING
from .retina_rois import snap_roi_boxes

FULL_GRID_COLOR = (150, 150, 150)
BODY_COLOR = (30, 110, 255)
FACE_COLOR = (235, 40, 40)
PERSON_COLOR = (255, 200, 0)
FACE_POINT_COLOR = (255, 60, 200)
LEFT_POINT_COLOR = (40, 200, 60)
RIGHT_POINT_COLOR = (0, 200, 230)


def _to_numpy(values: Any) -> np.ndarray:
    if torch.is_tensor(values):
        return values.detach().cpu().float().numpy()
    return np.asarray(values, dtype=np.float32)


def unnormalize(pixel_values: Any, image_mean: Sequence[float], image_std: Sequence[float]) -> Image.Image:
    """(3, S, S) normalised pixel values -> RGB PIL image."""
    values = _to_numpy(pixel_values).transpose(1, 2, 0)
    values = values * np.asarray(image_std, dtype=np.float32) + np.asarray(image_mean, dtype=np.float32)
    return Image.fromarray(np.round(np.clip(values, 0, 1) * 255).astype(np.uint8))


def _draw_grid(
    draw: ImageDraw.ImageDraw, box: np.ndarray, cells: int, side: int, color: tuple, width: int
) -> None:
    x0, y0, x1, y1 = (box * side).tolist()
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return
    for step in range(cells + 1):
        x = x0 + (x1 - x0) * step / cells
        y = y0 + (y1 - y0) * step / cells
        draw.line([(x, y0), (x, y1)], fill=color, width=width)
        draw.line([(x0, y), (x1, y)], fill=color, width=width)


def _point_color(index: int) -> tuple:
    name = KEYPOINT_NAMES[index]
    if not name.startswith(("left", "right")):
        return FACE_POINT_COLOR
    return LEFT_POINT_COLOR if name.startswith("left") else RIGHT_POINT_COLOR


def draw_retina(
    image: Image.Image,
    keypoints: Any,
    roi_boxes: Any,
    grid_size: int,
    person_box: Any = None,
    scale: float = 2.0,
    label_points: bool = True,
) -> Image.Image:
    """Overlay keypoints (19, 2), snapped ROI grids from roi_boxes (2, 4) [face, upper body] and an
    optional person box (4,) on the square `image`; returns a new RGB image `scale` times larger."""
    side = round(image.width * scale)
    canvas = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    boxes = torch.as_tensor(_to_numpy(roi_boxes)).reshape(2, 4)
    face, body = snap_roi_boxes(boxes[0:1], boxes[1:2], grid_size)
    _draw_grid(draw, np.array([0.0, 0.0, 1.0, 1.0]), grid_size, side, FULL_GRID_COLOR, 1)
    _draw_grid(draw, body[0].numpy(), grid_size, side, BODY_COLOR, 1)
    _draw_grid(draw, face[0].numpy(), grid_size, side, FACE_COLOR, 1)
    for box, color in ((body[0].numpy(), BODY_COLOR), (face[0].numpy(), FACE_COLOR)):
        if (box[2:] > box[:2]).all():
            draw.rectangle((box * side).tolist(), outline=color, width=3)
    if person_box is not None:
        chosen = _to_numpy(person_box).reshape(4)
        if (chosen != MISSING).all():
            draw.rectangle((chosen * side).tolist(), outline=PERSON_COLOR, width=2)
    radius = max(2, side // 160)
    for index, (x, y) in enumerate(_to_numpy(keypoints).reshape(-1, 2)):
        if x == MISSING and y == MISSING:
            continue
        cx, cy = x * side, y * side
        draw.ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius), fill=_point_color(index), outline=(0, 0, 0)
        )
        if label_points:
            draw.text((cx + radius + 1, cy - radius), str(index), fill=(0, 0, 0))
    return canvas


def visualize(
    features: Any,
    index: int = 0,
    image_mean: Sequence[float] = (0.5, 0.5, 0.5),
    image_std: Sequence[float] = (0.5, 0.5, 0.5),
    patch_size: int = 32,
    scale: float = 2.0,
    path: str | os.PathLike | None = None,
    processor: Any = None,
) -> Image.Image:
    """Render item `index` of a processor output (BatchFeature / dict); saves a PNG when `path` is given.

    Pass the `processor` that made `features` (its ``image_mean``, ``image_std`` and ``patch_size`` are then
    used), or those three when they differ from the defaults: the shipped model's 16-pixel patches drawn
    with the default 32 would show a grid the model does not use.
    """
    if processor is not None:
        image_mean, image_std, patch_size = processor.image_mean, processor.image_std, processor.patch_size
    pixel_values = features["pixel_values"][index]
    image = unnormalize(pixel_values, image_mean, image_std)
    grid_size = image.width // patch_size
    person_box = features["person_box"][index] if "person_box" in features else None
    canvas = draw_retina(
        image, features["keypoints"][index], features["roi_boxes"][index], grid_size, person_box, scale
    )
    if path is not None:
        canvas.save(os.fspath(path), format="PNG")
    return canvas


OTHER_PERSON_COLOR = (255, 255, 255)


def draw_people(
    rgb: np.ndarray, people: Sequence[Any], chosen: int | None = None, max_side: int | None = 640
) -> Image.Image:
    """The photo with every person's box numbered (0 = most prominent), the `chosen` one in yellow with its
    keypoints; `people` are `Person`s of `SapiensIDImageProcessor.detect_people` (photo pixels).
    Scaled so that the longer side is at most `max_side`."""
    picture = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    scale = 1.0
    if max_side is not None and max(picture.size) > max_side:
        scale = max_side / max(picture.size)
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 200))
    for index, person in enumerate(people):
        box = [value * scale for value in person.box]
        color = PERSON_COLOR if index == chosen else OTHER_PERSON_COLOR
        draw.rectangle(box, outline=(0, 0, 0), width=width + 2)
        draw.rectangle(box, outline=color, width=width)
        label = str(index)
        text_box = draw.textbbox((box[0] + width + 2, box[1] + width + 2), label)
        draw.rectangle([text_box[0] - 3, text_box[1] - 3, text_box[2] + 3, text_box[3] + 3], fill=(0, 0, 0))
        draw.text((box[0] + width + 2, box[1] + width + 2), label, fill=color)
        if index == chosen:
            for x, y in np.asarray(person.keypoints, dtype=np.float32):
                if x != MISSING and y != MISSING:
                    radius = width + 1
                    draw.ellipse([x * scale - radius, y * scale - radius, x * scale + radius, y * scale + radius], fill=color)
    return picture
