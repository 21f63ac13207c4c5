"""Clustering quality on the development people: Chinese whispers against connected components, one run.

    python benchmarks/bench_clustering.py [--model DIR] [--conreid-people 40] [--write docs/benchmarks.md]

Sets (people the model never trained on): LFW fold 7 (faces), CUHK03-val (bodies, two cameras), a
Con-ReID subset (the query people, at most 12 photos each), and LFW + CUHK03-val mixed. Embeddings as
`sapiensid evaluate --benchmark public-dev` makes them (flip, keypoints from the shared cache
outputs/dev_keypoints when present). Each method at the model's calibrated thresholds (faces / bodies,
best accuracy and FAR 1e-2): pairwise and BCubed F1, and the number of clusters (two or more photos) plus
photos seen once against the true number of people. The ratio column is BCubed F1 against connected
components at the same threshold. `--record` writes the fixed threshold with the best mean BCubed F1 of
Chinese whispers over the four sets into the model folder's config.json (`clustering`), where
`sapiensid cluster` reads its default.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import numpy as np
import torch
from dev_embeddings import DEFAULT_CACHE, DEFAULT_KEYPOINT_CACHE, development_embeddings
from markdown_report import publish_section

from sapiensid_hf.clustering import (
    bcubed_scores,
    cluster_embeddings,
    pairwise_scores,
    record_clustering_threshold,
)
from sapiensid_hf.cut_views import rule_description
from sapiensid_hf.inference import default_model_source, load_pipeline

SECTION = "## Clustering the development people"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--conreid-people", type=int, default=40)
    parser.add_argument("--keypoint-cache", type=Path, default=DEFAULT_KEYPOINT_CACHE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="embeddings kept between runs (same weights and subset only)")
    parser.add_argument(
        "--thresholds",
        type=lambda text: [float(v) for v in text.split(",")],
        default=[0.5, 0.6, 0.7],
        help="fixed thresholds measured beside the calibrated ones (default: 0.5,0.6,0.7)",
    )
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--record", action="store_true",
                        help="record the best fixed threshold of Chinese whispers in the model folder's config.json")
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    calibration = pipeline.calibration
    if not calibration:
        raise SystemExit(
            f"{pipeline.description} records no calibrated thresholds: run `sapiensid calibrate` first"
        )
    found = development_embeddings(pipeline, args.conreid_people, args.seed, args.cache, args.keypoint_cache)
    data = {name: (embeddings, labels) for name, (embeddings, labels, _) in found.items()}
    data["lfw + cuhk03 (mixed)"] = tuple(
        np.concatenate(parts) for parts in zip(data["lfw_fold7"], data["cuhk03_val"], strict=True)
    )

    lines = [
        SECTION, "",
        f"`python benchmarks/bench_clustering.py --conreid-people {args.conreid_people} --seed {args.seed} "
        f"--thresholds {','.join(f'{value:g}' for value in args.thresholds)}` with "
        f"{pipeline.description}, each photo embedded as {rule_description(pipeline.embedding_cuts)} (flip); "
        "thresholds from its calibration record. Clusters = groups of two or more, "
        "seen once = singletons. Ratio = BCubed F1 of the method / of connected components at the same threshold.",
        "",
        "| set | photos / people | threshold | method | pairwise P / R / F1 | BCubed P / R / F1 | clusters + seen once | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    whispers: dict[float, list[float]] = {}  # fixed threshold -> BCubed F1 of Chinese whispers on each set
    for name, (embeddings, labels) in data.items():
        people = len(set(labels.tolist()))
        kinds = (
            ("face",)
            if name == "lfw_fold7"
            else ("body",)
            if name in ("cuhk03_val", "conreid")
            else ("face", "body")
        )
        plural = {"face": "faces", "body": "bodies"}
        thresholds = [(f"{plural[kind]} {point.replace('_', ' ')}", float(calibration[kind][point]))
                      for kind in kinds for point in ("best_accuracy", "far_1e-2")]  # fmt: skip
        thresholds += [("fixed", value) for value in args.thresholds]
        for origin, threshold in thresholds:
            scores = {}
            fixed = origin == "fixed"
            for method in ("components", "chinese-whispers"):
                clustering = cluster_embeddings(embeddings, threshold, method, seed=args.seed)
                pairs, cubed = (
                    pairwise_scores(clustering.labels, labels),
                    bcubed_scores(clustering.labels, labels),
                )
                scores[method] = cubed["f1"]
                if fixed and method == "chinese-whispers":
                    whispers.setdefault(threshold, []).append(cubed["f1"])
                ratio = cubed["f1"] / scores["components"] if scores["components"] else float("nan")
                lines.append(
                    f"| {name} | {len(labels)} / {people} | {origin} {threshold:.3f} | {method} | "
                    f"{pairs['precision']:.2f} / {pairs['recall']:.2f} / {pairs['f1']:.2f} | "
                    f"{cubed['precision']:.2f} / {cubed['recall']:.2f} / {cubed['f1']:.2f} | "
                    f"{len(clustering.clusters)} + {len(clustering.singletons)} | {ratio:.2f}x |"
                )
    means = {threshold: float(np.mean(values)) for threshold, values in whispers.items()}
    best = max(means, key=means.get)
    summary = (
        f"best mean BCubed F1 of Chinese whispers over the {len(data)} sets: {means[best]:.2f} at {best:g} ("
        + ", ".join(f"{means[value]:.2f} at {value:g}" for value in sorted(means)) + ")"
    )
    lines += ["", summary[0].upper() + summary[1:] + ".", "", f"(torch threads {torch.get_num_threads()})"]
    publish_section(lines, SECTION, args.write)
    if args.record:
        folder = default_model_source(args.model)
        if folder is None or not Path(folder).is_dir():
            raise SystemExit(f"--record needs a local model folder, not {folder!r}")
        command = (f"python benchmarks/bench_clustering.py --conreid-people {args.conreid_people} --seed {args.seed} "
                   f"--thresholds {','.join(f'{value:g}' for value in args.thresholds)} --record")  # fmt: skip
        record_clustering_threshold(folder, best, f"{command} ({date.today().isoformat()}): {summary}")
        print(f"recorded {best:g} in {Path(folder) / 'config.json'} (`clustering`)")


if __name__ == "__main__":
    main()
