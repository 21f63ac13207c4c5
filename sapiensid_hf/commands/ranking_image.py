"""The picture `sapiensid search` saves: one row per query, the query then its best gallery matches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

THUMB = 160
CAPTION = 40
RATE_LINE = 17  # a third caption line, for the false-match rates
GAP = 8
QUERY_GAP = 24  # extra space between the query and its matches
HEADER = 44
BACKGROUND = (255, 255, 255)
TILE_BACKGROUND = (235, 235, 235)
QUERY_COLOR = (30, 110, 255)
TEXT_COLOR = (20, 20, 20)
WARNING_BACKGROUND = (200, 0, 0)
BOX_COLOR = (255, 200, 0)
EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # a quarter turn: width and height swap


@dataclass
class RankedRow:
    query: str
    matches: list[tuple[str, float]]  # (gallery image, cosine similarity), best first
    query_box: tuple[float, float, float, float] | None = None  # the person searched for, photo pixels
    match_boxes: list[tuple[float, float, float, float]] | None = None  # the matched person in each photo
    match_rates: list[str] | None = None  # each match's false-match rate in words ("about 7.4 %")

    def match_box(self, index: int) -> tuple[float, float, float, float] | None:
        return None if self.match_boxes is None else self.match_boxes[index]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def thumbnail(path: str, box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """The image upright and fitted into a THUMB x THUMB tile (a grey tile if it cannot be opened), with
    `box` (in the upright photo's pixels) drawn around the person it marks."""
    tile = Image.new("RGB", (THUMB, THUMB), TILE_BACKGROUND)
    try:
        with Image.open(path) as image:
            full_width, full_height = image.size
            if image.getexif().get(EXIF_ORIENTATION, 1) in ROTATED_ORIENTATIONS:
                full_width = full_height  # upright, the photo's width is its stored height
            image.draft("RGB", (2 * THUMB, 2 * THUMB))  # JPEG: decode at reduced scale, much faster
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, UnidentifiedImageError):
        return tile
    picture.thumbnail((THUMB, THUMB), Image.Resampling.BILINEAR)
    left, top = (THUMB - picture.width) // 2, (THUMB - picture.height) // 2
    tile.paste(picture, (left, top))
    if box is not None:
        scale = picture.width / full_width
        x0, y0, x1, y1 = (left + box[0] * scale, top + box[1] * scale, left + box[2] * scale, top + box[3] * scale)
        ImageDraw.Draw(tile).rectangle((x0, y0, x1, y1), outline=BOX_COLOR, width=3)
    return tile


def _caption(draw: ImageDraw.ImageDraw, x: int, y: int, lines: Sequence[str], font, color=TEXT_COLOR) -> None:
    for offset, line in enumerate(lines):
        text = line if len(line) <= 24 else "..." + line[-21:]
        draw.text((x + 2, y + 2 + offset * 17), text, fill=color, font=font)


def render_ranking(rows: Sequence[RankedRow], warning: str = "") -> Image.Image:
    """Query thumbnails (blue frame) followed by their matches with rank, score and, where given, the
    false-match rate (FMR); `warning` as a red header."""
    columns = max(len(row.matches) for row in rows) + 1
    header_font = _font(18)
    width = columns * (THUMB + GAP) + QUERY_GAP + GAP
    if warning:  # never cut the warning short, however few matches there are
        width = max(
            width,
            round(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(warning, font=header_font)) + 2 * GAP,
        )
    header = HEADER if warning else 0
    caption = CAPTION + (RATE_LINE if any(row.match_rates for row in rows) else 0)
    height = header + len(rows) * (THUMB + caption + GAP) + GAP
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(14)
    if warning:
        draw.rectangle((0, 0, width, HEADER - 4), fill=WARNING_BACKGROUND)
        draw.text((GAP, 10), warning, fill=(255, 255, 255), font=header_font)
    for index, row in enumerate(rows):
        top = header + GAP + index * (THUMB + caption + GAP)
        canvas.paste(thumbnail(row.query, row.query_box), (GAP, top))
        draw.rectangle((GAP - 3, top - 3, GAP + THUMB + 2, top + THUMB + 2), outline=QUERY_COLOR, width=3)
        _caption(draw, GAP, top + THUMB, ["query", os.path.basename(row.query)], font, QUERY_COLOR)
        for rank, (match, score) in enumerate(row.matches, start=1):
            left = GAP + QUERY_GAP + rank * (THUMB + GAP)
            canvas.paste(thumbnail(match, row.match_box(rank - 1)), (left, top))
            lines = [f"#{rank}  cos {score:.3f}", os.path.basename(match)]
            if row.match_rates:
                lines.append(f"FMR {row.match_rates[rank - 1]}")
            _caption(draw, left, top + THUMB, lines, font)
    return canvas
