"""How closely each face-framing rule of `detect_people` predicts the frame of the model's face photos.

    python benchmarks/bench_face_frame.py [--photos 1000] [--seed 0] [--write docs/benchmarks.md]

A person found in a photo is embedded from the frame an LFW photo of that face would have had
(docs/people.md). On LFW *training* photos that frame is known: the photo itself (250 x 250). Each photo
goes through `detect_people` as any photo would; for the person found at its centre, the frame predicted
by the keypoint rule (eyes and mouth, `Person.keypoint_face_frame`) and by OpenCV's face box widened as
LFW widened it (`processing/face_frame.py`) are compared with the photo: the log of the predicted side
over the photo's, the centre's distance from the photo's centre (share of the side), and the overlap
(IoU). Also reported: the photo's side over the face box's side (the widening the box implies: its median
sets PHOTO_SIDE_PER_BOX_SIDE), and how often no box was found (the keypoint rule frames those faces).
No model runs: detection and framing only.
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
from pathlib import Path

import numpy as np
from markdown_report import publish_section

from sapiensid_hf.processing import SapiensIDImageProcessor
from sapiensid_hf.processing.face_frame import PHOTO_SIDE_PER_BOX_SIDE, photo_frame_of_box
from sapiensid_hf.processing.people_detection import box_overlaps

SECTION = "## Framing a face like the training photos"
IDENTITIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "identities"


def training_faces(count: int, seed: int) -> list[Path]:
    rows = csv.DictReader(open(IDENTITIES / "manifest.csv", encoding="utf-8"))
    paths = sorted(IDENTITIES / row["path"] for row in rows if row["source"] == "lfw" and row["split"] == "train")
    random.Random(seed).shuffle(paths)
    return paths[:count]


def frame_errors(frame: tuple[float, float, float, float], side: float) -> tuple[float, float, float]:
    """(log of predicted side / true side, centre distance / side, IoU) of a square frame against the
    photo (0, 0, side, side)."""
    x0, y0, x1, y1 = frame
    log_side = float(np.log((x1 - x0) / side))
    centre = float(np.hypot((x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2)) / side
    iou, _ = box_overlaps(np.asarray(frame, dtype=np.float64), np.array([0.0, 0.0, side, side]))
    return log_side, centre, iou


def summary_row(label: str, errors: np.ndarray) -> str:
    log_side, centre, iou = errors.T
    robust_spread = np.subtract(*np.percentile(log_side, [75, 25])) / 1.349
    return (
        f"| {label} | {len(errors)} | {np.median(log_side):+.3f} | {robust_spread:.3f} | "
        f"{np.mean(np.abs(log_side) < np.log(1.05)):.2f} | {np.mean(np.abs(log_side) < np.log(1.10)):.2f} | "
        f"{np.median(centre):.3f} | {np.median(iou):.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=1000, help="LFW training photos (default: 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (docs/benchmarks.md)")
    args = parser.parse_args()

    processor = SapiensIDImageProcessor()
    keypoint_rule, keypoints_where_boxed, box_rule, fallback_rule, widening = [], [], [], [], []
    photos = training_faces(args.photos, args.seed)
    no_face = 0
    for path in photos:
        found = processor.detect_people(path)
        faces = [person for person in found.people if person.keypoint_face_frame() is not None and not person.legs_seen]
        if not faces:
            no_face += 1
            continue
        side = float(max(found.width, found.height))
        person = min(faces, key=lambda p: np.hypot((p.box[0] + p.box[2] - found.width) / 2, (p.box[1] + p.box[3] - found.height) / 2))
        from_keypoints = frame_errors(person.keypoint_face_frame(), side)
        keypoint_rule.append(from_keypoints)
        if person.face_box is None:
            fallback_rule.append(from_keypoints)
            continue
        box_rule.append(frame_errors(photo_frame_of_box(person.face_box), side))
        keypoints_where_boxed.append(from_keypoints)
        fallback_rule.append(box_rule[-1])
        widening.append(side / max(person.face_box[2] - person.face_box[0], person.face_box[3] - person.face_box[1]))
    framed = len(keypoint_rule)
    boxes = len(box_rule)
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_face_frame.py --photos {args.photos} --seed {args.seed}` on {platform.machine()}: "
        f"{len(photos)} LFW *training* photos of ../shared/data/identities (250 x 250; the frame each rule should "
        f"predict is the photo itself); {framed} with a face framed by `detect_people` at the centre ({no_face} "
        "without: no person, or no two eyes). docs/people.md says how a person in a photo is framed.",
        "",
        "| rule | faces | median log(side / photo side) | spread (robust std of the log) | side within 5 % | within 10 % | median centre error (share of side) | median IoU with the photo |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        summary_row("keypoints (eyes and mouth), every face", np.array(keypoint_rule)),
        summary_row("keypoints, on the faces a box was found for", np.array(keypoints_where_boxed)),
        summary_row(f"OpenCV face box x {PHOTO_SIDE_PER_BOX_SIDE}, where found", np.array(box_rule)),
        summary_row("what `detect_people` uses: the box, else the keypoints", np.array(fallback_rule)),
        "",
        f"The face box was found for {boxes} of {framed} faces ({boxes / max(framed, 1):.0%}); the photo's side is "
        f"{np.median(widening):.3f} box sides at the median (interquartile {np.percentile(widening, 25):.3f}-"
        f"{np.percentile(widening, 75):.3f}; LFW's own widening was 2.2).",
    ]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
