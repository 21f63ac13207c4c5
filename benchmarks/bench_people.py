"""Every person in a photo, measured: detection on the shared photos, person search in composed scenes, cost.

    python benchmarks/bench_people.py [--model DIR] [--scenes 100] [--write docs/benchmarks.md]
    python benchmarks/bench_people.py --split train    # scenes of training people: to choose settings on

1. Detection. On the photos of ../shared/data/people, the people a person would count (head positions
   marked by hand below, partly hidden people included) against the people `detect_people` finds: a
   found box is right when it holds a marked head no other box took, false otherwise.
2. Person search in scenes. Canvases composed from development people the model never trained on:
   CUHK03-val pedestrians (2-6 per 1280 x 720 canvas, 300-450 px tall, feet on a common ground line, a
   grey wall with noise behind them), and LFW fold-7 faces (2-4 photos side by side). Each person's other
   photos (CUHK03: the other camera; LFW: other photos; up to QUERIES_PER_PERSON) are the queries, each
   searched alone. Scene-level top-1 = the best match
   among every person found in every canvas is the right person with the right box (IoU >= 0.5 with
   where the photo was pasted), with each person embedded as `embed_people` does (three cuts averaged) and,
   in the same run, from one cut (`frame_scales=(1.0,)`). Crop-level top-1 = the same queries against the pasted photos themselves,
   one per gallery entry, same model, same run. Cut-at-the-pasted-box top-1 = the same queries against each
   person cut from the canvas where their photo was pasted (perfect detection and framing). The goal is
   scene-level >= 0.9 x crop-level. (An LFW photo holds background around the face: there the found box must
   lie mostly inside the pasted photo.)
3. Cost: seconds per photo of `detect_people` and of `embed_people`, and per person, on this machine.

Seeded (`--seed`); the shipped model by default.
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
from markdown_report import publish_section
from PIL import Image

from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.people_search import PeopleGallery, rank_people
from sapiensid_hf.processing.people_detection import box_overlaps

SECTION = "## Every person in a photo: detection, search in scenes, cost"
# Every other photo of a person is a query, up to this many: more queries than people narrow the estimate
# (the development sets hold 99 CUHK03 and 198 LFW people).
QUERIES_PER_PERSON = 4
REPO = Path(__file__).resolve().parents[1]
PEOPLE = REPO.parent / "shared" / "data" / "people"
IDENTITIES = REPO.parent / "shared" / "data" / "identities"
# Head centres (photo pixels) of every person a person would count, marked by hand; people cut by the
# frame count when their head or most of their body is in it.
MARKED_HEADS = {
    "couple.jpg": [(768, 936), (1738, 677)],
    "face_a_1.jpg": [(708, 657)],
    "face_a_2.jpg": [(773, 466)],
    "face_a_3.jpg": [(879, 810)],
    "face_b_1.jpg": [(776, 809)],
    "selfie-many-people.jpg": [(33, 290), (25, 490), (160, 390), (265, 190), (440, 180), (570, 150), (540, 470)],
    "street_bus.jpg": [(139, 442), (287, 449), (793, 422), (27, 675)],
    "two_men.jpg": [(561, 283), (957, 180)],
}


def detection_rows(pipeline) -> tuple[list[str], dict[str, int]]:
    lines = ["| photo | people marked | found | right | false | missed |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    totals = {"marked": 0, "found": 0, "right": 0, "false": 0}
    for name, heads in MARKED_HEADS.items():
        found = pipeline.processor.detect_people(PEOPLE / name).people
        taken: set[int] = set()
        right = 0
        for person in found:
            x0, y0, x1, y1 = person.box
            inside = [i for i, (x, y) in enumerate(heads) if x0 <= x <= x1 and y0 <= y <= y1 and i not in taken]
            if inside:
                centre = ((x0 + x1) / 2, (y0 + y1) / 2)
                taken.add(min(inside, key=lambda i: np.hypot(heads[i][0] - centre[0], heads[i][1] - centre[1])))
                right += 1
        false = len(found) - right
        lines.append(f"| {name} | {len(heads)} | {len(found)} | {right} | {false} | {len(heads) - right} |")
        for key, value in (("marked", len(heads)), ("found", len(found)), ("right", right), ("false", false)):
            totals[key] += value
    lines.append(
        f"| **all** | {totals['marked']} | {totals['found']} | {totals['right']} | {totals['false']} | "
        f"{totals['marked'] - totals['right']} |"
    )
    return lines, totals


def development_pairs(source: str, rng: random.Random, split: str = "val") -> list[tuple[str, str, list[str]]]:
    """(identity, gallery photo, query photos): CUHK03 across cameras, LFW across photos; `split` "train"
    composes scenes of training people, to choose settings on."""
    rows = list(csv.DictReader(open(IDENTITIES / "manifest.csv", encoding="utf-8")))
    by_identity: dict[str, list[dict]] = {}
    for row in rows:
        if row["source"] == source and row["split"] == split:
            by_identity.setdefault(row["identity"], []).append(row)
    pairs = []
    for identity, photos in sorted(by_identity.items()):
        if source == "cuhk03":
            cameras = {camera: [p for p in photos if p["camera"] == camera] for camera in ("0", "1")}
            if not cameras["0"] or not cameras["1"]:
                continue
            gallery, others = rng.choice(cameras["1"]), cameras["0"]
        else:
            if len(photos) < 2:
                continue
            gallery = rng.choice(photos)
            others = [photo for photo in photos if photo is not gallery]
        queries = rng.sample(others, min(QUERIES_PER_PERSON, len(others)))
        pairs.append((identity, str(IDENTITIES / gallery["path"]), [str(IDENTITIES / query["path"]) for query in queries]))
    rng.shuffle(pairs)
    return pairs


def compose_scenes(pairs, kind: str, count: int, rng: random.Random) -> list[tuple[np.ndarray, list[tuple[str, tuple]]]]:
    """Canvases holding the gallery photos of `pairs` (each person once); (canvas, [(identity, box)])."""
    scenes, cursor = [], 0
    for _ in range(count):
        people = rng.randint(2, 6) if kind == "bodies" else rng.randint(2, 4)
        chosen = pairs[cursor : cursor + people]
        cursor += people
        if len(chosen) < 2:
            break
        wall = np.full((720, 1280, 3), 150, dtype=np.float32) + np.asarray(rng.choices(range(-12, 13), k=3), np.float32)
        noise = np.random.default_rng(rng.randrange(2**31)).normal(0, 6, wall.shape)
        canvas = np.clip(wall + noise, 0, 255).astype(np.uint8)
        placed, slot_width = [], 1280 // len(chosen)
        for index, (identity, gallery, _) in enumerate(chosen):
            photo = Image.open(gallery).convert("RGB")
            height = rng.randint(300, 450) if kind == "bodies" else 300
            width = round(photo.width * height / photo.height)
            photo = photo.resize((width, height), Image.Resampling.BILINEAR)
            left = index * slot_width + rng.randint(0, max(0, slot_width - width))
            top = (680 - height) if kind == "bodies" else 210
            left = min(left, 1280 - width)
            canvas[top : top + height, left : left + width] = np.asarray(photo)
            placed.append((identity, (left, top, left + width, top + height)))
        scenes.append((canvas, placed))
    return scenes


def box_iou(first, second) -> float:
    """Intersection over union of two xyxy boxes (processing/people_detection.box_overlaps)."""
    return box_overlaps(np.asarray(first, dtype=np.float32), np.asarray(second, dtype=np.float32))[0]


def right_place(found: np.ndarray, pasted: np.ndarray, kind: str) -> bool:
    """A pedestrian crop is the person's box (IoU >= 0.5); an LFW photo holds a face and shoulders with
    background around them, so there the found box must lie mostly (>= 50 %) inside the pasted photo."""
    if kind == "bodies":
        return box_iou(found, pasted) >= 0.5
    low, high = np.maximum(found[:2], pasted[:2]), np.minimum(found[2:], pasted[2:])
    inside = float(np.prod(np.clip(high - low, 0, None)))
    return inside >= 0.5 * float(np.prod(found[2:] - found[:2]))


def scene_search(pipeline, kind: str, source: str, scenes_wanted: int, seed: int, split: str = "val") -> dict[str, float]:
    rng = random.Random(seed)
    pairs = development_pairs(source, rng, split)
    scenes = compose_scenes(pairs, kind, scenes_wanted, rng)
    pasted = [(identity, box, scene_index) for scene_index, (_, people) in enumerate(scenes) for identity, box in people]
    lookup = {identity: (gallery, query) for identity, gallery, query in pairs}
    identities = [identity for identity, _, _ in pasted]

    canvases = [canvas for canvas, _ in scenes]
    started = time.perf_counter()
    found = pipeline.embed_people(canvases)
    scene_seconds = time.perf_counter() - started
    names = [f"scene {i}" for i in range(len(scenes))]
    galleries = {
        "scene": PeopleGallery.from_people(names, found),
        "one cut": PeopleGallery.from_people(names, pipeline.embed_people(canvases, detections=found.images, frame_scales=(1.0,))),
    }  # fmt: skip
    owners = [index for index, identity in enumerate(identities) for _ in lookup[identity][1]]
    # The development photos are crops of one person (as `--person-crops` declares): embedded as they are,
    # never cut again by the single-person path (small_person_framing.py).
    queries = pipeline.embed([query for identity in identities for query in lookup[identity][1]], frame_small_people=False)
    crops = pipeline.embed([lookup[identity][0] for identity in identities], frame_small_people=False)
    # Each person cut from the canvas at exactly where the photo was pasted: perfect detection and framing.
    cut_out = pipeline.embed([np.ascontiguousarray(scenes[scene_index][0][top:bottom, left:right])
                              for _, (left, top, right, bottom), scene_index in pasted], frame_small_people=False)  # fmt: skip

    hits: dict[str, list[int]] = {name: [] for name in ("scene", "one cut", "crop", "pasted-box")}
    searched_owners = []
    for query, owner in enumerate(owners):
        if not queries.person_found[query]:
            continue  # a query with nobody in it has nothing to search with, in every search alike
        searched_owners.append(identities[owner])
        _, box, scene_index = pasted[owner]
        for name, gallery in galleries.items():
            best = rank_people(queries.embeddings[query], gallery, 1)
            match = best[0].person if best else None
            right = match is not None and match.path == f"scene {scene_index}" and right_place(np.array(match.box), np.array(box), kind)
            hits[name].append(int(right))
        for name, embedded in (("crop", crops), ("pasted-box", cut_out)):
            scores = np.where(embedded.person_found, embedded.embeddings @ queries.embeddings[query], -np.inf)
            hits[name].append(int(int(np.argmax(scores)) == owner))
    searched, people_found = len(searched_owners), len(found.rows)
    return {
        "scenes": len(scenes), "people pasted": len(pasted), "people found": people_found, "queries": searched,
        **{f"{name} top-1": sum(values) / max(searched, 1) for name, values in hits.items()},
        "ratio interval": ratio_interval(np.array(hits["scene"]), np.array(hits["crop"]), np.array(searched_owners), seed),
        "s per scene": scene_seconds / max(len(scenes), 1), "s per person": scene_seconds / max(people_found, 1),
    }  # fmt: skip


def ratio_interval(scene: np.ndarray, crop: np.ndarray, people: np.ndarray, seed: int, draws: int = 2000) -> tuple[float, float]:
    """The 90 % bootstrap interval of scene / crop top-1: people drawn with replacement, each with all
    their queries, both searches on the same draw (the two counts share their queries)."""
    names, person_of_query = np.unique(people, return_inverse=True)
    scene_per_person = np.bincount(person_of_query, weights=scene, minlength=len(names))
    crop_per_person = np.bincount(person_of_query, weights=crop, minlength=len(names))
    draw = np.random.default_rng(seed).integers(0, len(names), size=(draws, len(names)))
    ratios = scene_per_person[draw].sum(axis=1) / np.maximum(crop_per_person[draw].sum(axis=1), 1)
    low, high = np.quantile(ratios, [0.05, 0.95])
    return float(low), float(high)


def cost_rows(pipeline, repeats: int) -> list[str]:
    photos = sorted(PEOPLE.glob("*.jpg"))
    pipeline.processor.detect_people(photos[0])  # load the detector models first
    started = time.perf_counter()
    for _ in range(repeats):
        for photo in photos:
            pipeline.processor.detect_people(photo)
    detect = (time.perf_counter() - started) / (repeats * len(photos))
    started = time.perf_counter()
    single = pipeline.embed([str(photo) for photo in photos])
    single_seconds = (time.perf_counter() - started) / len(photos)
    started = time.perf_counter()
    people = pipeline.embed_people(photos)
    people_seconds = time.perf_counter() - started
    return [
        "| step | seconds | ratio to the single-person `embed` of a photo |",
        "| --- | ---: | ---: |",
        f"| single-person `embed`, per photo (baseline) | {single_seconds:.2f} | 1.00x |",
        f"| `detect_people`, per photo | {detect:.2f} | {detect / single_seconds:.2f}x |",
        f"| `embed_people`, per photo | {people_seconds / len(photos):.2f} | {people_seconds / len(photos) / single_seconds:.2f}x |",
        f"| `embed_people`, per person ({len(people.rows)} people in {len(photos)} photos) | "
        f"{people_seconds / max(len(people.rows), 1):.2f} | {people_seconds / max(len(people.rows), 1) / single_seconds:.2f}x |",
        f"({len(single.embeddings)} photos of ../shared/data/people, torch threads {torch.get_num_threads()})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--scenes", type=int, default=100, help="canvases per kind, until the development people run out (default: 100; CUHK03-val runs out at about 25, LFW fold 7 at about 69)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="timing repeats of the detection (default: 2)")
    parser.add_argument(
        "--split", choices=("val", "train"), default="val",
        help="whose photos make the scenes: the development people (default) or training people, to choose settings on",
    )  # fmt: skip
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (docs/benchmarks.md)")
    args = parser.parse_args()
    if args.split == "train" and args.write:
        parser.error("--split train is for choosing settings: its figures are printed, not written to the docs")
    torch.manual_seed(args.seed)
    pipeline = load_pipeline(args.model)

    detection, totals = detection_rows(pipeline)
    bodies = scene_search(pipeline, "bodies", "cuhk03", args.scenes, args.seed, args.split)
    faces = scene_search(pipeline, "faces", "lfw", args.scenes, args.seed, args.split)
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_people.py --scenes {args.scenes} --seed {args.seed}"
        f"{' --split train' if args.split == 'train' else ''}` with {pipeline.description}, "
        f"on {platform.machine()} ({torch.get_num_threads()} torch threads). docs/people.md explains the method.",
        "",
        f"**Detection** on ../shared/data/people (heads marked by hand in the script): {totals['right']} of "
        f"{totals['marked']} people found, {totals['false']} false boxes.",
        "",
        *detection,
        "",
        f"**Person search in composed scenes** ({'development' if args.split == 'val' else 'TRAINING'} people only; "
        "ratio = scene-level / crop-level top-1, "
        "same queries, same model, same run):",
        "",
        "| scenes | canvases | people pasted / found | queries | crop-level top-1 | scene-level top-1 (right person, right place) | ratio (90 % interval) | scene-level, one cut a person | ratio | cut at the pasted box: top-1 | ratio | s per canvas |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    labels = ("CUHK03-val pedestrians", "LFW fold-7 faces") if args.split == "val" else ("CUHK03 training pedestrians", "LFW training faces")
    for label, result in ((f"{labels[0]}, 2-6 per canvas", bodies), (f"{labels[1]}, 2-4 per canvas", faces)):
        crop = result["crop top-1"] or float("nan")
        lines.append(
            f"| {label} | {result['scenes']} | {result['people pasted']} / {result['people found']} | {result['queries']} | "
            f"{result['crop top-1']:.3f} | {result['scene top-1']:.3f} | {result['scene top-1'] / crop:.2f}x "
            f"({result['ratio interval'][0]:.2f}-{result['ratio interval'][1]:.2f}) | "
            f"{result['one cut top-1']:.3f} | {result['one cut top-1'] / crop:.2f}x | "
            f"{result['pasted-box top-1']:.3f} | {result['pasted-box top-1'] / crop:.2f}x | {result['s per scene']:.2f} |"
        )
    lines += [
        "",
        f"Queries: every other photo of each person (CUHK03: the other camera), up to {QUERIES_PER_PERSON} a person. "
        "Scene-level: each person embedded as `embed_people` does, the mean of three cuts (5 % tighter, as framed, "
        "5 % wider; a face framed around OpenCV's face box where one is found, docs/people.md); \"one cut\": the same people from the frame alone. \"Cut at the pasted box\": each person cut "
        "from the canvas exactly where their photo was pasted and embedded alone, searched among those cuts: what a "
        "perfect detector and a perfect frame would give; the rest of the gap to crop-level is the canvas's "
        "resampling of the photo. The interval: 2,000 bootstrap draws of the people (each with all their queries, "
        "both searches on the same draw), its 5th and 95th percentiles.",
    ]
    lines += ["", "**Cost** on this machine:", "", *cost_rows(pipeline, args.repeats)]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
