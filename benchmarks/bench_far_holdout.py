"""Do the false-match rates the tools print hold for people the curve was not measured on?

    python benchmarks/bench_far_holdout.py [--model DIR] [--splits 20] [--seed 0] [--write docs/benchmarks.md]

`compare`, `search`, `cluster` and the Space say how often different people reach a score ("about 0.39 % of
different-person face pairs score this high"), read off the FAR curves of the model's calibration record:
every different-person pair of LFW fold 7's photos (faces) and of CUHK03-val's (bodies). Those curves were
measured on the very people whose pairs they count; a user's photos show others. Here each set's people
are split into two halves at random (`--splits` times, seeded): a curve is built from one half's
different-person pairs exactly as `sapiensid calibrate` builds it (`FarCurve.from_different_scores`), and at
its thresholds for a few FARs the other half's different-person pairs are counted. Ratio observed /
promised: 1.00x honest, below 1 cautious, above 1 the printed rate promises fewer false matches than come.
A half holds about a quarter of the pairs of the whole set, so a half's curve is noisier than the
shipped one: the spread is an upper bound on the shipped curve's own sampling error.

The last rows read the shipped body curve (the record's, the whole of CUHK03-val) on the Con-ReID
development people (construction-site workers of another camera network, disjoint from the training
people): a change of scene, not only of people. No face set outside LFW fold 7 is free of training use
here, so the faces have only the split check.

Embeddings: dev_embeddings.py (as `sapiensid evaluate --benchmark public-dev` makes them; cached).
"""

from __future__ import annotations

import numpy as np
from dev_embeddings import calibrated_development_embeddings, development_arguments
from markdown_report import publish_section

from sapiensid_hf.evaluation.calibration import different_person_scores
from sapiensid_hf.evaluation.far_curve import FarCurve

SECTION = "## How well the printed false-match rates hold for other people"
FARS = (0.1, 0.01, 0.001)
KINDS = {"lfw_fold7": "face", "cuhk03_val": "body"}
PLURALS = {"face": "faces", "body": "bodies"}


def observed_far(different: np.ndarray, threshold: float) -> float:
    """The share of different-person pair scores at or above `threshold` (what a curve promises to be its FAR)."""
    return float((different >= threshold).mean())


def split_people(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row masks of two halves of the people of `labels`, drawn at random; a person's photos stay together."""
    people = np.unique(labels)
    first = set(rng.permutation(people)[: len(people) // 2].tolist())
    mask = np.asarray([label in first for label in labels])
    return mask, ~mask


def holdout_ratios(embeddings: np.ndarray, labels: np.ndarray, splits: int, seed: int) -> dict[float, list[float]]:
    """FAR -> observed / promised on the held-out half, one entry a split (both directions of each split);
    a FAR a half's pairs cannot measure (FarCurve keeps no point for it) gets no entry."""
    rng = np.random.default_rng(seed)
    ratios: dict[float, list[float]] = {far: [] for far in FARS}
    for _ in range(splits):
        halves = split_people(labels, rng)
        differents = [different_person_scores(embeddings[half], labels[half]) for half in halves]
        for fitted, held_out in ((0, 1), (1, 0)):
            curve = FarCurve.from_different_scores(differents[fitted], "one half", {})
            for far in FARS:
                if far not in curve.fars:
                    continue
                threshold, _ = curve.threshold_at(far)
                ratios[far].append(observed_far(differents[held_out], threshold) / far)
    return ratios


def ratio_cell(values: list[float]) -> str:
    if not values:
        return "too few pairs"
    low, median, high = np.percentile(values, [10, 50, 90])
    return f"{median:.2f}x ({low:.2f}-{high:.2f})"


def main() -> None:
    args = development_arguments(__doc__.split("\n")[0], "--splits", "random halvings of each set's people")
    pipeline, data = calibrated_development_embeddings(args)
    calibration = pipeline.calibration
    fars = " / ".join(f"{100 * far:g} %" for far in FARS)
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_far_holdout.py --splits {args.splits} --seed {args.seed}` with "
        f"{pipeline.description} (module docstring). Each set's people split in two halves at random, "
        f"{args.splits} times; a FAR curve built from one half's different-person pairs as `sapiensid calibrate` "
        f"builds it, read at {fars} on the other half's pairs, both ways: observed / promised, median of the "
        f"{2 * args.splits} readings (10th-90th percentile). 1.00x: the rate printed is what comes; above 1: "
        "more different people reach the score than the rate says.",
        "",
        f"| pairs | people (photos) | pairs a half, about | at a promised FAR of {fars} |",
        "| --- | ---: | ---: | --- |",
    ]  # fmt: skip
    for name, kind in KINDS.items():
        embeddings, labels, _ = data[name]
        ratios = holdout_ratios(embeddings, labels, args.splits, args.seed)
        half_pairs = len(different_person_scores(embeddings, labels)) // 4
        cells = " / ".join(ratio_cell(ratios[far]) for far in FARS)
        lines.append(f"| {name} ({PLURALS[kind]}), one half's curve on the other half | {len(np.unique(labels))} ({len(labels)}) | {half_pairs:,} | {cells} |")
    embeddings, labels, _ = data["conreid"]
    conreid_different = different_person_scores(embeddings, labels)
    body_curve = FarCurve.from_record(calibration["body"]["far_curve"])
    cells = []
    for far in FARS:
        threshold, within = body_curve.threshold_at(far)
        cells.append(f"{observed_far(conreid_different, threshold) / far:.2f}x" if within else "beyond the curve")
    lines.append(
        f"| conreid (bodies), the shipped body curve | {len(np.unique(labels))} ({len(labels)}) | "
        f"{len(conreid_different):,} (all) | {' / '.join(cells)} |"
    )
    shipped = [FarCurve.from_record(calibration[kind]["far_curve"]) for kind in ("face", "body")]
    lines += [
        "",
        f"Shipped curves: {'; '.join(f'{kept.pairs_from} ({kept.pairs:,} pairs)' for kept in shipped)}. "
        "Con-ReID: its first 40 query people, at most 12 photos each (dev_embeddings.py).",
    ]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
