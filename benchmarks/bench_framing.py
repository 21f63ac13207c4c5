"""How much the cut of a picture moves its embedding: the same photo reframed, against itself.

    python benchmarks/bench_framing.py [--model DIR] [--photos 120] [--write docs/benchmarks.md]

Every photo (LFW fold-7 faces and CUHK03-val pedestrian crops of ../shared/data/identities, development
people only) is embedded as it is and after one change of its frame: resized (the same content in fewer
pixels), cut tighter (zoom in), cut wider with the added margin a flat grey wall (a photo pasted on a
page, or a person cut beside a plain background) or the photo's own mirrored content (a wider cut of a
real scene), and shifted sideways. Reported per change: the median cosine between the reframed and the
original embedding, and self top-1, the share of reframed photos whose nearest original (among all the
originals of the set) is their own. The resized row is the baseline: it changes pixels, not framing.

A person cut from a scene (`embed_people`) is framed from detected keypoints, so its cut differs from
the photo's own by a few per cent; this table says what that costs the model (docs/people.md).
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from markdown_report import publish_section
from PIL import Image

from sapiensid_hf.inference import load_pipeline

SECTION = "## Framing: how much the cut of a picture moves its embedding"
IDENTITIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "identities"
WALL_GREY = 150
GENUINE = "reference: two photos of one person"
IMPOSTOR = "reference: photos of two people"


def reframe(photo: np.ndarray, scale: float, shift: float = 0.0, fill: str = "mirror") -> np.ndarray:
    """The photo cut `scale` times as wide and tall around its centre moved right by `shift` of its width;
    what lies outside the photo is its mirrored content ("mirror") or a flat grey wall ("wall")."""
    height, width = photo.shape[:2]
    new_width, new_height = round(width * scale), round(height * scale)
    left = round((width - new_width) / 2 + shift * width)
    top = round((height - new_height) / 2)
    pad = max(0, -left, -top, left + new_width - width, top + new_height - height)
    if pad:
        widths = ((pad, pad), (pad, pad), (0, 0))
        photo = np.pad(photo, widths, mode="symmetric") if fill == "mirror" else np.pad(photo, widths, constant_values=WALL_GREY)
    return np.ascontiguousarray(photo[top + pad : top + pad + new_height, left + pad : left + pad + new_width])


def resized(photo: np.ndarray, share: float) -> np.ndarray:
    height, width = photo.shape[:2]
    size = (max(1, round(width * share)), max(1, round(height * share)))
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR))


CHANGES: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("resized to 80 % (same content; baseline)", lambda photo: resized(photo, 0.8)),
    ("cut 5 % tighter", lambda photo: reframe(photo, 0.95)),
    ("cut 10 % tighter", lambda photo: reframe(photo, 0.90)),
    ("cut 5 % wider, mirrored content", lambda photo: reframe(photo, 1.05)),
    ("cut 10 % wider, mirrored content", lambda photo: reframe(photo, 1.10)),
    ("cut 20 % wider, mirrored content", lambda photo: reframe(photo, 1.20)),
    ("cut 5 % wider, flat grey wall", lambda photo: reframe(photo, 1.05, fill="wall")),
    ("cut 10 % wider, flat grey wall", lambda photo: reframe(photo, 1.10, fill="wall")),
    ("cut 20 % wider, flat grey wall", lambda photo: reframe(photo, 1.20, fill="wall")),
    ("shifted 5 % sideways, mirrored content", lambda photo: reframe(photo, 1.0, shift=0.05)),
    ("shifted 10 % sideways, mirrored content", lambda photo: reframe(photo, 1.0, shift=0.10)),
)


def development_photos(source: str, count: int, seed: int) -> list[tuple[Path, str]]:
    """`count` (photo, identity) of the set's development people: people with two or more photos first, so
    that the genuine pairs of the reference row exist."""
    rows = [row for row in csv.DictReader(open(IDENTITIES / "manifest.csv", encoding="utf-8")) if row["source"] == source and row["split"] == "val"]
    random.Random(seed).shuffle(rows)
    photos_of: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        photos_of[row["identity"]] = photos_of.get(row["identity"], 0) + 1
        first_seen.setdefault(row["identity"], index)
    rows.sort(key=lambda row: (photos_of[row["identity"]] < 2, first_seen[row["identity"]]))  # a person's photos together
    return [(IDENTITIES / row["path"], row["identity"]) for row in rows[:count]]


def framing_rows(pipeline, photos: list[tuple[Path, str]]) -> dict[str, tuple[float, float]]:
    """{change: (median cosine to the original, self top-1)} over the photos in which a person is found,
    and two reference rows: the median cosine between two photos of one person, and of two people."""
    pictures = [np.asarray(Image.open(path).convert("RGB")) for path, _ in photos]
    # How the model itself reads a reframed picture: the single-person path's cut of a small person is off.
    originals = pipeline.embed(pictures, frame_small_people=False)
    kept = np.flatnonzero(originals.person_found)
    gallery = originals.embeddings[kept]
    identities = np.array([photos[index][1] for index in kept])
    same = identities[:, None] == identities[None, :]
    pairs = np.triu(np.ones_like(same), k=1)
    similarity = gallery @ gallery.T
    results = {
        GENUINE: (float(np.median(similarity[same & pairs])) if (same & pairs).any() else float("nan"), float("nan")),
        IMPOSTOR: (float(np.median(similarity[~same & pairs])), float("nan")),
    }
    for name, change in CHANGES:
        changed = pipeline.embed([change(pictures[index]) for index in kept], frame_small_people=False).embeddings
        cosine = (changed * gallery).sum(axis=1)
        self_top1 = float(np.mean(np.argmax(changed @ gallery.T, axis=1) == np.arange(len(kept))))
        results[name] = (float(np.median(cosine)), self_top1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--photos", type=int, default=120, help="photos per set (default: 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (docs/benchmarks.md)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    pipeline = load_pipeline(args.model)
    sets = {"LFW fold-7 faces": "lfw", "CUHK03-val pedestrians": "cuhk03"}
    measured = {label: framing_rows(pipeline, development_photos(source, args.photos, args.seed)) for label, source in sets.items()}
    header = " | ".join(f"{label}: median cosine | self top-1 | top-1 vs baseline" for label in sets)
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_framing.py --photos {args.photos} --seed {args.seed}` with {pipeline.description}, "
        f"on {platform.machine()} ({torch.get_num_threads()} torch threads). Each photo against itself reframed; "
        "self top-1 = its nearest original (among the set's originals) is its own; the resized row is the baseline. The reference rows give the scale: the median "
        "cosine between two different photos of one person, and between photos of two people.",
        "",
        f"| change of frame | {header} |",
        "| --- |" + " ---: | ---: | ---: |" * len(sets),
    ]
    for name in [GENUINE, IMPOSTOR]:
        cells = [f"{measured[label][name][0]:.3f} | - | -" for label in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, _ in CHANGES:
        cells = []
        for label in sets:
            cosine, top1 = measured[label][name]
            baseline = measured[label][CHANGES[0][0]][1]
            cells.append(f"{cosine:.3f} | {top1:.3f} | {top1 / baseline:.2f}x" if baseline else f"{cosine:.3f} | {top1:.3f} | -")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    wall, mirror = "cut 10 % wider, flat grey wall", "cut 10 % wider, mirrored content"
    lines += [
        "",
        "Cut 10 % wider, the median cosine to the original is "
        + ", ".join(f"{measured[label][mirror][0]:.2f} with mirrored content and {measured[label][wall][0]:.2f} with a flat "
                    f"grey wall ({label})" for label in sets)
        + ". The model was trained on LFW photos and pedestrian crops, which never have a flat margin; a person "
        "cut from a scene with a plain background beside them (benchmarks/bench_people.py pastes photos on a grey "
        "wall) pays that price.",
    ]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
