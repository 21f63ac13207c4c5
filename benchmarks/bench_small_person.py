"""A person alone in a wider photo: the single-person embedding of the whole photo against a cut of the person.

    python benchmarks/bench_small_person.py [--model DIR] [--people 100] [--seed 0] [--write docs/benchmarks.md]

Each development person's gallery photo (CUHK03-val: a camera-1 crop; LFW fold 7: one of their photos) is
pasted at a random place on a grey wall with noise (as benchmarks/bench_people.py's scenes) so that it
covers a given share of the picture; the person's other photos (CUHK03: camera 0; LFW: their other
photos; up to 4) are the queries. Top-1 of the queries against the gallery of pictures, embedded:

- as the photos themselves (crop-level: the baseline of the ratio column),
- as whole pictures (`embed(..., frame_small_people=False)`, the single-person path before 2026-12-04),
- cut to the person's frame, whatever their share: one cut, as the processor cuts a small person
  (processing/small_person_frame.py), and three cuts (5 % tighter, as framed, 5 % wider), as `embed_people`
  embeds a person (what `embed` did from 2026-12-04 until the processor made the cut),
- as `embed` did before 2026-12-05: cut when the person's frame covers less than SMALL_PERSON_SHARE of the
  picture, a picture in which the detector's first look (the whole picture at 224 pixels) finds nobody left
  without a person,
- as `embed` does by default: the same, and such a picture searched for people as `detect_people` searches
  (its tiles, silhouettes, faces), the most prominent one found embedded.

The person-found column is the share of the gallery pictures in which somebody was found (the cut rows
cut whoever `embed` found).

Then the development photos themselves (framed like the training photos): the share of each photo that its
chosen person's frame covers, how many `embed` cuts, and rank-1 with and without the rule.
Seeded; the shipped model by default. The grey wall is plainer than a real surrounding, so the whole
picture's loss is an upper estimate of what a real photo of the same framing loses.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
from bench_people import development_pairs
from dev_embeddings import conreid_subset
from markdown_report import publish_section
from PIL import Image

from sapiensid_hf.data.common import UndecodedImages
from sapiensid_hf.evaluation.public_dev import load_dev_sets
from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.processing import small_person_frame
from sapiensid_hf.processing.people_in_image import PeopleInImage

SECTION = "## A person alone in a wider photo"
REPO = Path(__file__).resolve().parents[1]
IDENTITIES = REPO.parent / "shared" / "data" / "identities"
SHARES = (0.02, 0.05, 0.15, 0.3, 0.45, 0.6, 0.8)


def pasted(photo_path: str, share: float, rng: random.Random) -> np.ndarray:
    """The photo on a grey wall with noise, covering `share` of the picture (same proportions as the photo)."""
    photo = np.asarray(Image.open(photo_path).convert("RGB"))
    height, width = photo.shape[:2]
    scale = 1.0 / np.sqrt(share)
    canvas_height, canvas_width = round(height * scale), round(width * scale)
    wall = np.full((canvas_height, canvas_width, 3), 150, np.float32) + np.asarray(rng.choices(range(-12, 13), k=3), np.float32)
    noise = np.random.default_rng(rng.randrange(2**31)).normal(0, 6, wall.shape)
    canvas = np.clip(wall + noise, 0, 255).astype(np.uint8)
    top, left = rng.randint(0, canvas_height - height), rng.randint(0, canvas_width - width)
    canvas[top : top + height, left : left + width] = photo
    return canvas


def top1(queries: np.ndarray, owners: np.ndarray, gallery: np.ndarray) -> float:
    return float((np.argmax(queries @ gallery.T, axis=1) == owners).mean())


def embed_first_look_only(pipeline, pictures: list[np.ndarray]):
    """`embed` as it was before 2026-12-05: a picture in which the detector's first look finds nobody is not
    searched for people (`_searched_for_people` answers with the first look)."""
    processor = pipeline.processor
    processor._searched_for_people = lambda rgb, padding, first_look, settings, name: first_look
    try:
        return pipeline.embed(pictures)
    finally:
        del processor._searched_for_people


def embed_always_cut(pipeline, pictures: list[np.ndarray], whole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every person cut to their frame, whatever the share they cover (the rule with its limit lifted): (one
    cut, as the processor cuts; three cuts, as `embed_people` embeds the same person); a picture with nobody
    to cut keeps `whole`, its embedding as it is. The three cuts frame the person the detector's first look
    found, or, where it found nobody, the one the people search found (`one`'s points, carried back into the
    picture by the pipeline)."""
    kept = small_person_frame.SMALL_PERSON_SHARE
    small_person_frame.SMALL_PERSON_SHARE = 1.01  # a frame never covers more than the whole picture
    try:
        one = pipeline.embed(pictures)
        three = whole.copy()
        features = pipeline.processor(pictures, return_tensors="np")
        rows, detections = [], []
        for row, picture in enumerate(pictures):
            keypoints, box, source = features["keypoints"][row], features["person_box"][row], features["keypoint_source"][row]
            if not features["person_found"][row] and one.framed[row]:
                keypoints, box, source = one.keypoints[row], one.person_box[row], "pose"
            found = small_person_frame.small_person_cut(picture, keypoints, box, source)
            if found is not None:
                height, width = picture.shape[:2]
                rows.append(row)
                detections.append(PeopleInImage([found[0]], width, height, found=1))
        if rows:
            three[rows] = pipeline.embed_people([pictures[row] for row in rows], detections=detections).embeddings
        return one.embeddings, three
    finally:
        small_person_frame.SMALL_PERSON_SHARE = kept


def frame_shares(pipeline, pictures: list) -> np.ndarray:
    """(N,) the share of each picture its chosen person's frame covers (NaN where nobody was found)."""
    shares = []
    for start in range(0, len(pictures), 16):
        features = pipeline.processor(pictures[start : start + 16], return_tensors="np")
        for row, (height, width) in enumerate(features["original_sizes"]):
            if not features["person_found"][row]:
                shares.append(np.nan)
                continue
            person = small_person_frame.chosen_person(features["keypoints"][row], features["person_box"][row], height, width)
            shares.append(small_person_frame.frame_share(person, height, width))
    return np.asarray(shares)


def search_rows(pipeline, kind: str, source: str, people: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pairs = development_pairs(source, rng)[:people]
    queries, owners = [], []
    for index, (_, _, query_paths) in enumerate(pairs):
        queries += query_paths
        owners += [index] * len(query_paths)
    embedded_queries = pipeline.embed(queries)
    found = embedded_queries.person_found
    query_embeddings, owners = embedded_queries.embeddings[found], np.asarray(owners)[found]
    embedded_gallery = pipeline.embed([gallery for _, gallery, _ in pairs])
    crop = top1(query_embeddings, owners, embedded_gallery.embeddings)
    rows = [f"{kind}: {len(pairs)} people, {len(owners)} queries.", "",
            "| gallery | embedded as | person found | top-1 | ratio | framed |", "| --- | --- | ---: | ---: | ---: | ---: |",
            f"| the photos themselves | as they are | {embedded_gallery.person_found.mean():.2f} | {crop:.3f} | 1.00x | |"]  # fmt: skip
    for share in SHARES:
        pictures = [pasted(gallery, share, rng) for _, gallery, _ in pairs]
        whole = pipeline.embed(pictures, frame_small_people=False)
        one_cut, three_cuts = embed_always_cut(pipeline, pictures, whole.embeddings)
        first_look = embed_first_look_only(pipeline, pictures)
        default = pipeline.embed(pictures)  # the cut where the rule cuts, the whole picture elsewhere
        cut_rule = f"cut below {small_person_frame.SMALL_PERSON_SHARE:g}"
        for rule, embeddings, found, share_framed in (
            ("whole picture", whole.embeddings, f"{whole.person_found.mean():.2f}", ""),
            ("cut to the person's frame (one cut)", one_cut, "", ""),
            ("cut to the person's frame (three cuts, `embed_people`)", three_cuts, "", ""),
            (f"`embed` before 2026-12-05 ({cut_rule}, first look only)", first_look.embeddings,
             f"{first_look.person_found.mean():.2f}", f"{first_look.framed.mean():.2f}"),
            (f"`embed` ({cut_rule}, people search where the first look finds nobody)", default.embeddings,
             f"{default.person_found.mean():.2f}", f"{default.framed.mean():.2f}"),
        ):  # fmt: skip
            value = top1(query_embeddings, owners, embeddings)
            rows.append(f"| photo covers {share:.2f} | {rule} | {found} | {value:.3f} | {value / crop:.2f}x | {share_framed} |")
    return rows + [""]


def development_rows(pipeline, seed: int) -> list[str]:
    """The development photos themselves (framed like the training photos): how much of each one its
    chosen person's frame covers, how many `embed` cuts, and rank-1 with and without the rule."""
    sets = load_dev_sets(IDENTITIES)
    rows = ["| development photos | photos | frame share: min / 1st percentile / median | cut by `embed` | rank-1 as they are | rank-1 by `embed` |",
            "| --- | ---: | --- | ---: | ---: | ---: |"]  # fmt: skip
    for name in ("lfw_fold7", "cuhk03_val", "conreid"):
        dev = sets[name]
        picked = conreid_subset(dev, 40, 12, seed) if name == "conreid" else np.arange(len(dev.dataset))
        images = UndecodedImages(dev.dataset)
        paths = [images[int(row)] for row in picked]
        shares = frame_shares(pipeline, paths)
        found = shares[np.isfinite(shares)]
        cut = np.concatenate([
            pipeline.processor(paths[start : start + 16], return_tensors="np", frame_small_people=True)["framed"]
            for start in range(0, len(paths), 16)
        ])  # fmt: skip
        spread = f"{np.min(found):.2f} / {np.quantile(found, 0.01):.2f} / {np.median(found):.2f}"
        if name == "lfw_fold7":  # verification pairs, not a ranking: the count says what moves
            rows.append(f"| {name} | {len(paths)} | {spread} | {int(cut.sum())} | | |")
            continue
        as_they_are, by_embed = pipeline.embed(paths, frame_small_people=False), pipeline.embed(paths)
        assert by_embed.framed.tolist() == cut.tolist()
        pids = np.asarray(dev.dataset.select(picked.tolist())["pid"])
        if name == "cuhk03_val":
            cameras = np.asarray(dev.dataset.select(picked.tolist())["camid"])
            query, gallery = cameras == 0, cameras == 1
        else:
            roles = np.asarray(dev.dataset.select(picked.tolist())["role"])
            query, gallery = roles == "query", roles == "gallery"
        query &= as_they_are.person_found
        gallery &= as_they_are.person_found
        figures = [
            float((pids[gallery][np.argmax(embeddings[query] @ embeddings[gallery].T, axis=1)] == pids[query]).mean())
            for embeddings in (as_they_are.embeddings, by_embed.embeddings)
        ]
        rows.append(f"| {name} | {len(paths)} | {spread} | {int(cut.sum())} | {figures[0]:.3f} | {figures[1]:.3f} |")
    return rows + ["", "Rank-1 here: every query against every gallery photo of the set (CUHK03-val camera 0 -> 1, "
                   "Con-ReID query -> gallery, the subset of the 40 first query people), embedded by the pipeline "
                   "(not the published protocols of `sapiensid evaluate`, which embed the photos as they are)."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--people", type=int, default=100, help="development people a kind (default: 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, default=None, help="markdown file to update (docs/benchmarks.md)")
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_small_person.py --people {args.people} --seed {args.seed}` with "
        f"{pipeline.description} (module docstring). Top-1 of each person's other photos against a gallery of "
        "pictures in which the person's photo covers the given share, each picture embedded as the rule says; "
        "ratio: against the photos themselves, same queries, same run; framed: the share of the gallery "
        "pictures that `embed` cut.", "",
    ]  # fmt: skip
    lines += search_rows(pipeline, "CUHK03-val pedestrians", "cuhk03", args.people, args.seed)
    lines += search_rows(pipeline, "LFW fold-7 faces", "lfw", args.people, args.seed)
    lines += development_rows(pipeline, args.seed)
    lines += ["", f"(torch threads {torch.get_num_threads()})"]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
