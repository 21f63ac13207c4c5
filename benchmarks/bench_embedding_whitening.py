"""Would a linear map fitted on the training photos' embeddings make the shipped model recognise better?

    python benchmarks/bench_embedding_whitening.py [--model DIR] [--write docs/benchmarks.md]

A classical post-hoc step for a weak embedding: fit, on the embeddings of the *training* photos of
../shared/data/identities (CUHK03, Con-ReID and LFW train: 1.8k people), a centring and a whitening, and
apply it to every embedding before the cosine. Such a map could be folded into the model's last linear
layer at no cost. Candidates: the mean removed; PCA whitening of the whole spread; within-class whitening
(the spread of each person's photos about their mean, pooled: what separates photos of one person is
shrunk), each with shrinkage towards the identity. Each is scored on the development sets with the
project's public-dev protocols (`sapiensid evaluate --benchmark public-dev`: flip, the same keypoints),
against the embeddings as they are, in the same run. Nothing here is tuned on data outside
../shared/data; the development people are never in the fit.

Needs the keypoint caches of `sapiensid evaluate` (--keypoint-cache) and of the training recipe
(examples/configs/small_distill.yaml's data.keypoint_cache); either is made on first use if missing
(slow: the detector runs on every photo).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from dev_embeddings import scoring_arguments, scoring_pipeline
from markdown_report import difference_table, publish_section

from sapiensid_hf.evaluation import public_dev
from sapiensid_hf.keypoint_cache import build_keypoint_cache
from sapiensid_hf.training import TrainingConfig
from sapiensid_hf.training.dataset import DatasetView, load_source_dataset

SECTION = "## Post-hoc whitening of the embeddings"
REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "configs" / "small_distill.yaml"
SHRINKAGES = (0.1, 0.3, 0.6)

Transform = Callable[[np.ndarray], np.ndarray]


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def inverse_square_root(covariance: np.ndarray, shrinkage: float) -> np.ndarray:
    """(C')^-1/2 of C' = (1 - s) C + s (trace(C) / d) I: the whitening of a covariance, shrunk towards a
    sphere of the same total spread (a full-rank inverse of a 512-d covariance from 14k photos is noisy)."""
    dimension = covariance.shape[0]
    shrunk = (1 - shrinkage) * covariance + shrinkage * np.trace(covariance) / dimension * np.eye(dimension)
    values, vectors = np.linalg.eigh(shrunk)
    return vectors @ np.diag(values**-0.5) @ vectors.T


def within_class_covariance(embeddings: np.ndarray, people: np.ndarray) -> np.ndarray:
    """The spread of each person's embeddings about that person's mean, pooled over people."""
    deviations = np.empty_like(embeddings)
    for person in np.unique(people):
        mine = people == person
        deviations[mine] = embeddings[mine] - embeddings[mine].mean(axis=0)
    return deviations.T @ deviations / len(embeddings)


def candidate_transforms(train: np.ndarray, people: np.ndarray) -> dict[str, Transform]:
    """Every map, fitted on the training embeddings (unit rows) and their people."""
    mean = train.mean(axis=0)
    total = np.cov((train - mean).T)
    within = within_class_covariance(train, people)
    transforms: dict[str, Transform] = {"as shipped": lambda rows: rows, "mean removed": lambda rows: rows - mean}
    for shrinkage in SHRINKAGES:
        pca, wccn = inverse_square_root(total, shrinkage), inverse_square_root(within, shrinkage)
        transforms[f"PCA whitening, shrinkage {shrinkage}"] = lambda rows, w=pca: (rows - mean) @ w.T
        transforms[f"within-class whitening, shrinkage {shrinkage}"] = lambda rows, w=wccn: (rows - mean) @ w.T
    return transforms


def headline_figures(sets: dict[str, public_dev.DevSet], embedded: dict[str, np.ndarray]) -> dict[str, float]:
    """CUHK03-val rank-1 / mAP (mean of the directions), Con-ReID rank-1 / mAP, LFW accuracy / TAR@FAR 1e-2."""
    scored = {name: public_dev.score_dev_set(dev, embedded[name]) for name, dev in sets.items()}
    cuhk = scored["cuhk03_val"].values()
    return {
        "cuhk03 rank-1": float(np.mean([part["rank1"] for part in cuhk])),
        "cuhk03 mAP": float(np.mean([part["mAP"] for part in cuhk])),
        "conreid rank-1": scored["conreid"]["query_to_gallery"]["rank1"],
        "conreid mAP": scored["conreid"]["query_to_gallery"]["mAP"],
        "lfw accuracy": scored["lfw_fold7"]["pairs"]["accuracy"],
        "lfw TAR@FAR 1e-2": scored["lfw_fold7"]["pairs"]["tar@far=0.01"],
    }


def embed_development_sets(pipeline, identities: Path, cache: Path) -> tuple[dict[str, public_dev.DevSet], dict[str, np.ndarray]]:
    sets = public_dev.load_dev_sets(identities)
    embedded = {}
    for name, dev in sets.items():
        keypoints = public_dev.dev_keypoints(dev, pipeline.processor, cache)
        if name in public_dev.PERSON_CROP_CHECKS:
            keypoints = public_dev.with_crop_prior(dev, keypoints)
        embedded[name] = public_dev.embed_rows(pipeline.model, pipeline.processor, dev.dataset, keypoints, num_workers=1)
    return sets, embedded


def embed_training_photos(pipeline, identities: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings (flip) and person ids of the recipe's training photos in which keypoints were found."""
    data = replace(TrainingConfig.from_file(RECIPE).data, root=str(identities / "manifest.csv"))
    view = DatasetView(load_source_dataset(data))
    cache = build_keypoint_cache(view.image, view.paths, pipeline.processor, REPO / data.keypoint_cache, num_workers=1)
    rows = np.flatnonzero(cache.readable & (cache.keypoints != -1).any(axis=(1, 2)))
    images = [view.image(row) for row in rows]
    embeddings = public_dev.embed_rows_of_files(pipeline.model, pipeline.processor, images, cache.keypoints[rows], num_workers=1)
    return embeddings, view.pids[rows]


def main() -> None:
    args = scoring_arguments(__doc__)

    pipeline = scoring_pipeline(args.model)
    sets, development = embed_development_sets(pipeline, args.identities, args.keypoint_cache)
    train, people = embed_training_photos(pipeline, args.identities)
    results = {
        label: headline_figures(sets, {name: unit(transform(rows.astype(np.float64))) for name, rows in development.items()})
        for label, transform in candidate_transforms(train.astype(np.float64), people).items()
    }
    shipped = results["as shipped"]
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_embedding_whitening.py` with {Path(args.model).name} ({platform.machine()}, "
        f"{torch.get_num_threads()} torch threads): maps fitted on the embeddings of {len(train):,} training photos of "
        f"{len(np.unique(people)):,} people (recipe v3's training split, keypoints found), scored on the development "
        "sets with the public-dev protocols (flip), in %; the difference to the embeddings as shipped in brackets.",
        "",
        *difference_table("map", results, "as shipped"),
    ]  # fmt: skip
    wins = [label for label, figures in results.items() if label != "as shipped" and all(figures[c] >= shipped[c] for c in shipped)]
    lines += ["", "Maps at or above the shipped embeddings on every figure: " + (", ".join(wins) if wins else "none") + "."]
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
