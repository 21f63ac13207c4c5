"""Pictures without a person, and face photos: how often the single-person path finds somebody to embed.

    python benchmarks/bench_person_free.py [--model DIR] [--faces 100] [--crops 8] [--seed 0] [--write docs/benchmarks.md]

The tools (`embed`, `compare`, `search`, `index build`, `cluster`, the Space, the shipped folder's processor)
score people only: a picture without a person must come out as "no person found", never as somebody's
embedding. Three sets, through the model folder's processor as the tools call it (`frame_small_people`: the
small-person cut and the people search where the first look finds nobody; no centre cuts or mirror, which
do not change who is found):

- person-free pictures, in colour and as greyscale copies: the sample images that the installed packages
  ship (matplotlib, scikit-learn, gradio; animals apart, as a face or pose detector may take an animal for
  a person) and `--crops` seeded crops of each (0.3-0.8 of its sides), and synthetic ones (noise, gradient,
  checkerboard, a plain wall);
- face photos, in colour and as greyscale copies: `--faces` photos of each source of ../shared/data/faces
  (unlabelled), seeded;
- people alone in a wider photo: `--people` development people of CUHK03-val and LFW fold 7 (their gallery
  photo, as benchmarks/bench_small_person.py) pasted on a grey wall covering 0.02-0.3 of it.

Each under seven rules: before 2026-12-05 (a face the first look found alone counted from BlazeFace score
0.5; a person cut to their frame kept whatever the detector saw there); a lone face held to the people
search's standard (FACE_ONLY_MIN_SCORE 0.75; a weaker one searched for like nobody); that, and a person cut
to their frame kept only where the detector sees somebody in that frame (not nobody, not a weak lone face);
that, and a person who shows a face (eyes at least 8 pixels apart) and no legs kept only where
OpenCV's YuNet face detector confirms the face (processing/face_check.py); and now: that, with a close-up
face from eyes 0.15 of the picture apart (was 0.2; people path below); and a find whose nose and eyes lie on
another find's face, with eyes less than half as far apart, is that person (`lies_on_face_features`); and now: a find
of fewer than 3 keypoints (a nose and an eye) is nobody, at the first look and in the person's own frame
(`MIN_PERSON_POINTS`). Columns: the
share in which somebody was found, and what found them (the keypoint source: "pose" the person detector,
"crop" the person-crop fallback, "face" a lone face, "given" the person's own points carried into the cut
where the detector chose somebody else there). `--rules N` measures the last N rules only.

Then the people path (`embed_people`: `embed --all-people`, `index build --all-people`, `cluster
--all-people`, a group photo in `compare`) on the person-free pictures and the face photos: rows (people
embedded) before 2026-12-05; when a person the people search found is kept only where the detector sees
somebody in that person's own frame (the middle of the three cuts); that, and a face cropped tight
(`is_close_up_face`: eyes at least 0.2 of the picture apart then, 0.15 now, no shoulders in it) counts as a person to the
search and comes before the "bodies" the landmark model fits to its features; that, and the face
check, as above; a close-up face from eyes 0.15 apart; a find whose face lies on another's face is that
person (a fit on that face's features, which gave a face photo a second row); and now: a person's own frame
shows them only with 3 keypoints or more. The rules before the close-up one are measured without it,
in the single-person rows too (where the search runs only when the first look found nobody); the rules
before the face check without it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from bench_people import development_pairs
from bench_small_person import pasted
from markdown_report import publish_section
from PIL import Image, ImageOps

from sapiensid_hf import people_embedding
from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.processing.keypoint_detector import KeypointResult

SECTION = "## Pictures without a person"
SHARES = (0.02, 0.05, 0.15, 0.3)
RULES = (
    "before 2026-12-05",
    "a lone face from 0.75",
    "and seen again in their frame",
    "and a face without legs confirmed by YuNet",
    "and a close-up face from eyes 0.15 apart",
    "and a find whose face lies on another's face is that person",
    "now: and a find of fewer than 3 keypoints is nobody",
)
# The close-up face's eye distance (people_detection.CLOSE_UP_EYE_DISTANCE) before the last rule.
EARLIER_CLOSE_UP_EYE_DISTANCE = 0.2
REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"
FACE_SOURCES = ("utkface", "caltech", "ffhq")
# (package, path inside it, kind): the larger sample images of packages the project installs; none shows a person.
PACKAGE_PICTURES = (
    ("matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png", "objects and scenes"),
    ("matplotlib", "mpl-data/sample_data/logo2.png", "objects and scenes"),
    ("sklearn", "datasets/images/china.jpg", "objects and scenes"),
    ("sklearn", "datasets/images/flower.jpg", "objects and scenes"),
    ("gradio", "media_assets/images/tower.jpg", "objects and scenes"),
    ("gradio", "media_assets/images/hf-logo_transpng.png", "objects and scenes"),
    ("gradio", "media_assets/images/cheetah.jpg", "animals"),
    ("gradio", "media_assets/images/cheetah1.jpg", "animals"),
    ("gradio", "media_assets/images/lion.jpg", "animals"),
    ("gradio", "test_data/cheetah2.jpg", "animals"),
)


def package_picture(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.exists() else None


def synthetic_pictures(rng: np.random.Generator) -> list[Image.Image]:
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, 640, dtype=np.float32)
    gradient = np.stack([np.tile(ramp, (480, 1)), np.tile(ramp[::-1], (480, 1)), np.full((480, 640), 128.0)], -1)
    checker = ((np.add.outer(np.arange(480) // 40, np.arange(640) // 40) % 2) * 255).astype(np.uint8)
    wall = np.clip(150 + rng.normal(0, 6, (480, 640, 3)), 0, 255)
    arrays = (noise, gradient, np.repeat(checker[..., None], 3, axis=2), wall)
    return [Image.fromarray(np.asarray(array, dtype=np.uint8)) for array in arrays]


def crops(picture: Image.Image, count: int, rng: random.Random) -> list[Image.Image]:
    width, height = picture.size
    views = []
    for _ in range(count):
        scale = rng.uniform(0.3, 0.8)
        w, h = round(width * scale), round(height * scale)
        left, top = rng.randint(0, width - w), rng.randint(0, height - h)
        views.append(picture.crop((left, top, left + w, top + h)))
    return views


def person_free_sets(crop_count: int, seed: int) -> tuple[dict[str, list[Image.Image]], list[str]]:
    rng = random.Random(seed)
    sets: dict[str, list[Image.Image]] = {"objects and scenes": [], "animals": []}
    missing = []
    for package, relative, kind in PACKAGE_PICTURES:
        path = package_picture(package, relative)
        if path is None:
            missing.append(f"{package}/{relative}")
            continue
        picture = Image.open(path).convert("RGB")
        sets[kind] += [picture, *crops(picture, crop_count, rng)]
    sets["synthetic"] = synthetic_pictures(np.random.default_rng(seed))
    return sets, missing


def face_photos(per_source: int, seed: int) -> list[Image.Image]:
    rng = random.Random(seed)
    paths = []
    for source in FACE_SOURCES:
        paths += rng.sample(sorted((FACES / source).glob("*.jpg")), per_source)
    return [Image.open(path).convert("RGB") for path in paths]


def found_people(processor, pictures: list[Image.Image]) -> tuple[np.ndarray, list[str]]:
    found, sources = [], []
    for start in range(0, len(pictures), 16):
        batch = pictures[start : start + 16]
        features = processor(batch, return_tensors="np", embedding_cuts=None, embedding_flip=False, frame_small_people=True)
        found += features["person_found"].tolist()
        sources += list(features["keypoint_source"])
    return np.asarray(found, dtype=bool), sources


def people_detection_of(processor):
    """The people_detection module that the processor's detector runs (the installed package's, or the copy
    in a model folder), whose globals the rules below patch."""
    package = type(processor.detector).__module__.rpartition(".")[0]
    return sys.modules[f"{package}.people_detection"]


def close_up_faces_ignored(processor) -> contextlib.AbstractContextManager:
    """The people search as before the close-up rule: `is_close_up_face` never true (the detector module's
    own copy, which `is_plausible_person` and `merge_finds` look up when they run)."""
    return mock.patch.object(people_detection_of(processor), "is_close_up_face", lambda keypoints: False)


def faces_on_faces_apart(processor) -> contextlib.AbstractContextManager:
    """The people search as before `lies_on_face_features`: a find whose face lies on another's is somebody else."""
    return mock.patch.object(people_detection_of(processor), "lies_on_face_features", lambda owner, other: False)


def close_up_from(processor, eye_distance: float) -> contextlib.AbstractContextManager:
    """The people search with close-up faces from `eye_distance` (the detector module's own copy)."""
    return mock.patch.object(people_detection_of(processor), "CLOSE_UP_EYE_DISTANCE", eye_distance)


def any_point_a_person(processor) -> contextlib.AbstractContextManager:
    """Both paths as before MIN_PERSON_POINTS: one keypoint is somebody (the processor's detector module
    and the package's, which embed_people asks)."""
    stack = contextlib.ExitStack()
    for module in {sys.modules[type(processor.detector).__module__], sys.modules[people_embedding.sees_somebody.__module__]}:
        stack.enter_context(mock.patch.object(module, "MIN_PERSON_POINTS", 1))
    return stack


@contextlib.contextmanager
def face_check_off(processor) -> Iterator[None]:
    """Both paths as before the face check: every face confirmed."""
    processor._face_unconfirmed = lambda *args: False
    kept = people_embedding.face_confirmed
    people_embedding.face_confirmed = lambda *args: True
    try:
        yield
    finally:
        processor.__dict__.pop("_face_unconfirmed", None)
        people_embedding.face_confirmed = kept


def found_under(rule: str, processor, pictures: list) -> tuple[np.ndarray, list[str]]:
    """`found_people` under one of RULES (the earlier ones restored for the call)."""
    step = RULES.index(rule)
    kept_face_rule = KeypointResult.is_weak_lone_face
    if step == 0:
        KeypointResult.is_weak_lone_face = property(lambda self: False)
    if step < 2:
        processor._sees_somebody = lambda result: True
    try:
        with contextlib.ExitStack() as earlier:
            if step < 2:
                earlier.enter_context(close_up_faces_ignored(processor))
            if step < 3:
                earlier.enter_context(face_check_off(processor))
            if step < 4:
                earlier.enter_context(close_up_from(processor, EARLIER_CLOSE_UP_EYE_DISTANCE))
            if step < 5:
                earlier.enter_context(faces_on_faces_apart(processor))
            if step < 6:
                earlier.enter_context(any_point_a_person(processor))
            return found_people(processor, pictures)
    finally:
        KeypointResult.is_weak_lone_face = kept_face_rule
        processor.__dict__.pop("_sees_somebody", None)


def pasted_people(source: str, people: int, share: float, seed: int) -> list[np.ndarray]:
    rng = random.Random(seed)
    pairs = development_pairs(source, rng)[:people]
    return [pasted(gallery, share, rng) for _, gallery, _ in pairs]


PEOPLE_RULES = (RULES[0], "seen again in their frame", "and a close-up face is a person", *RULES[3:])


def people_rows(pipeline, pictures: list, rule: str) -> tuple[int, int]:
    """(pictures with at least one row, rows) of `embed_people` under one of PEOPLE_RULES (the earlier ones
    restored for the call: "before", every person the search found gets a row; no close-up faces; no face
    check)."""
    step = PEOPLE_RULES.index(rule)
    kept = people_embedding._embed
    if step == 0:

        def embed_seeing_everyone(*args, **kwargs):
            embeddings, used, seen = kept(*args, **kwargs)
            return embeddings, used, np.ones_like(seen)

        people_embedding._embed = embed_seeing_everyone
    try:
        with_rows, rows = 0, 0
        with contextlib.ExitStack() as earlier:
            if step < 2:
                earlier.enter_context(close_up_faces_ignored(pipeline.processor))
            if step < 3:
                earlier.enter_context(face_check_off(pipeline.processor))
            if step < 4:
                earlier.enter_context(close_up_from(pipeline.processor, EARLIER_CLOSE_UP_EYE_DISTANCE))
            if step < 5:
                earlier.enter_context(faces_on_faces_apart(pipeline.processor))
            if step < 6:
                earlier.enter_context(any_point_a_person(pipeline.processor))
            for picture in pictures:
                found = pipeline.embed_people([np.asarray(picture)])
                with_rows += bool(found.rows)
                rows += len(found.rows)
        return with_rows, rows
    finally:
        people_embedding._embed = kept


def git_head() -> str:
    """The checkout's commit (short), which the written section's earlier rows can be read from."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table_row(label: str, rule: str, found: np.ndarray, sources: list[str]) -> str:
    counts = Counter(source for source, person in zip(sources, found, strict=True) if person)
    by_source = ", ".join(f"{source} {count}" for source, count in sorted(counts.items())) or "-"
    return f"| {label} | {rule} | {len(found)} | {found.sum()} ({found.mean():.1%}) | {by_source} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--faces", type=int, default=100, help="face photos of each source (default: 100)")
    parser.add_argument("--crops", type=int, default=8, help="seeded crops of each package picture (default: 8)")
    parser.add_argument("--people", type=int, default=100, help="development people a kind (default: 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", type=int, default=len(RULES), help="the last N rules of each path only (default: all)")
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (docs/benchmarks.md)")
    args = parser.parse_args()
    rules, people_rules = RULES[-args.rules :], PEOPLE_RULES[-args.rules :]
    pipeline = load_pipeline(args.model)
    processor = pipeline.processor
    sets, missing = person_free_sets(args.crops, args.seed)
    faces = face_photos(args.faces, args.seed)
    groups: dict[str, list] = {}
    for name, pictures in [*sets.items(), ("face photos (../shared/data/faces)", faces)]:
        groups[f"{name}, colour"] = pictures
        groups[f"{name}, greyscale"] = [ImageOps.grayscale(picture).convert("RGB") for picture in pictures]
    for kind, source in (("CUHK03-val pedestrians", "cuhk03"), ("LFW fold-7 faces", "lfw")):
        for share in SHARES:
            groups[f"{kind} covering {share:.2f} of a wall"] = pasted_people(source, args.people, share, args.seed)
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_person_free.py --faces {args.faces} --crops {args.crops} --people {args.people} "
        f"--seed {args.seed} --rules {args.rules}` with {pipeline.description}'s processor (module docstring): pictures in which the "
        "single-person path of the tools finds somebody to embed. On the person-free pictures every find is a "
        "wrong answer; on the others every miss is a person refused.", "",
        "| pictures | rule | pictures | somebody found | found by (keypoint source) |",
        "| --- | --- | ---: | ---: | --- |",
    ]  # fmt: skip
    for label, pictures in groups.items():
        for rule in rules:
            lines.append(table_row(label, rule, *found_under(rule, processor, pictures)))
    lines += ["", "The people path (`embed_people`), same pictures:", "",
              "| pictures | rule | pictures | pictures with a person embedded | people embedded |",
              "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for label, pictures in groups.items():
        if "covering" in label:
            continue  # one person a picture: the single-person rows above say it
        for rule in people_rules:
            with_rows, rows = people_rows(pipeline, pictures, rule)
            lines.append(f"| {label} | {rule} | {len(pictures)} | {with_rows} ({with_rows / len(pictures):.1%}) | {rows} |")
    if missing:
        lines += ["", "Not installed here, left out: " + ", ".join(missing)]
    if args.rules < len(RULES):
        head = git_head()
        lines += ["", f"Only the last {args.rules} rules of each path were run (`--rules {args.rules}`); the earlier rules' rows "
                  f"are in this section as it was at commit {head} (`git show {head}:docs/benchmarks.md`)."]  # fmt: skip
    lines += ["", f"(torch threads {torch.get_num_threads()})"]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
