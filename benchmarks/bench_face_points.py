"""Five face points: the default pipeline (`face_points="blazeface"`) against the official aligner's rule
(`face_points="retinaface"`), on real photos, in one run.

    python benchmarks/bench_face_points.py [--num-lfw 200] [--no-write]

Sets: the 8 photos of ../shared/data/people; `--num-lfw` LFW photos of ../shared/data/identities
(every k-th, 250 x 250, head and shoulders); the same LFW photos cut to their central 100 x 100
pixels (a tight face crop, the face-recognition case). For each set and pipeline: how often all five
face points (eyes, nose, mouth corners) are found, how often the mouth corners are; where both
pipelines give all five, the mean distance between their points in face-box units (the RetinaFace
face box's side, sqrt(w h)); and the processor's time per image relative to the default pipeline.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import numpy as np
from markdown_report import publish_section
from PIL import Image

from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_layout import MOUTH_1, MOUTH_2, visible

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Face points"
FIVE = [0, 1, 2, 3, 4]  # nose, eye_1, eye_2, mouth_1, mouth_2
TIGHT = (75, 75, 175, 175)  # central 100 x 100 of a 250 x 250 LFW photo


def lfw_paths(count: int) -> list[Path]:
    with open(DATA / "identities" / "manifest.csv", newline="") as handle:
        rows = sorted(row["path"] for row in csv.DictReader(handle) if row["source"] == "lfw")
    step = max(1, len(rows) // count)
    return [DATA / "identities" / path for path in rows[::step][:count]]


def run(processor: SapiensIDImageProcessor, images: list) -> tuple[dict, float]:
    start = time.perf_counter()
    features = processor(images, return_tensors="np")
    return features, (time.perf_counter() - start) / len(images)


def face_box_sides(processor: SapiensIDImageProcessor, images: list) -> np.ndarray:
    """Side (sqrt(w h), square units) of RetinaFace's face box per image (nan where it found none)."""
    detector = processor.detector
    sides = []
    for image in images:
        rgb = np.asarray(Image.open(image).convert("RGB")) if isinstance(image, Path) else image
        side = max(rgb.shape[:2])
        square = np.full((side, side, 3), 255, np.uint8)
        top, left = (side - rgb.shape[0]) // 2, (side - rgb.shape[1]) // 2
        square[top : top + rgb.shape[0], left : left + rgb.shape[1]] = rgb
        face = detector._five_points.face_in(square, np.array([0, 0, 1, 1], np.float32))
        width, height = face.box[2:] - face.box[:2]
        sides.append(float(np.sqrt(max(width, 0) * max(height, 0))) if face.score >= 0.5 else np.nan)
    return np.asarray(sides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-lfw", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args()

    lfw = lfw_paths(args.num_lfw)
    sets = {
        "people photos (../shared/data/people)": sorted((DATA / "people").iterdir()),
        f"LFW photos ({len(lfw)}, 250 x 250)": lfw,
        f"LFW tight face crops ({len(lfw)}, central 100 x 100)": [
            np.asarray(Image.open(path).convert("RGB").crop(TIGHT)) for path in lfw
        ],
    }
    default = SapiensIDImageProcessor()
    official = SapiensIDImageProcessor(face_points="retinaface")
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_face_points.py --num-lfw {args.num_lfw}`: the five face points (eyes, nose, "
        'mouth corners) of the default pipeline (`face_points="blazeface"`: BlazePose\'s points, or BlazeFace\'s '
        'nose and eyes when nobody is found) and of the official aligner\'s rule (`face_points="retinaface"`: '
        "RetinaFace MobileNet-0.25 on the square head crop, or the whole image when nobody is found, points "
        "dropped below face score 0.5). Distance: mean over the five points where both pipelines give all five, "
        "in units of RetinaFace's face box side. Time: the whole processor per image, relative to the default.",
        "",
        "| images | pipeline | all five points | mouth corners | mean distance (face boxes) | time x default |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, images in sets.items():
        inputs = [str(image) if isinstance(image, Path) else image for image in images]
        default(inputs[:1]), official(inputs[:1])  # build both detectors outside the timing
        ours, default_s = run(default, inputs)
        theirs, official_s = run(official, inputs)
        sides = face_box_sides(official, images)
        for label, features, seconds in (("blazeface (default)", ours, default_s), ("retinaface", theirs, official_s)):
            shown = visible(features["keypoints"][:, FIVE])
            all_five = shown.all(axis=1)
            mouths = visible(features["keypoints"][:, [MOUTH_1, MOUTH_2]]).all(axis=1)
            if label == "retinaface":
                both = visible(ours["keypoints"][:, FIVE]).all(axis=1) & all_five & np.isfinite(sides)
                gaps = np.linalg.norm(ours["keypoints"][:, FIVE] - theirs["keypoints"][:, FIVE], axis=-1).mean(axis=1)
                distance = f"{float(np.mean(gaps[both] / sides[both])):.3f} ({int(both.sum())} images)" if both.any() else "-"
            else:
                distance = ""
            lines.append(
                f"| {name} | {label} | {all_five.mean():.1%} | {mouths.mean():.1%} | {distance} | "
                f"{seconds / default_s:.2f} |"
            )
    lines += [
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; other jobs may share "
        "the cores, so the time column is rough.",
        "",
        "The default stays `blazeface`: the shipped model was trained with it, and a model folder records the "
        "rule it expects (`face_points` joins the processor's `keypoint_rules` when it is not the default, so "
        "keypoint caches made under the other rule are detected again).",
    ]
    publish_section(lines, SECTION, None if args.no_write else DOC)


if __name__ == "__main__":
    main()
