"""Group the people of a collection into identities without knowing how many there are.

Two methods on the cosine similarities of L2-normalised embeddings, both on the graph whose edges join
two rows at least `threshold` alike:

- `chinese_whispers` (Biemann 2006; dlib's face clustering): every row starts as its own label, then, in
  a seeded random order, takes the label with the largest total edge weight among its neighbours, until
  nothing changes. A chain of look-alikes does not merge two people the way it does below.
- `connected_components`: every row linked by a chain of edges is one cluster (single linkage): the
  plain baseline the benchmark compares against.

A cluster of one is a person seen once: `Clustering.singletons`. Metrics for a labelled set:
`pairwise_scores` (precision / recall / F over pairs put together) and `bcubed_scores` (per item,
averaged: Bagga & Baldwin 1998).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic_files import write_json_atomically

BLOCK = 2048  # rows of the similarity matrix computed at once: bounds memory for large collections
CLUSTER_METHODS = ("chinese-whispers", "components")
# config.json key of a model folder's grouping threshold: it belongs to the weights (their cosines move with
# every retraining), so it travels with them, like the verification thresholds of `calibration`.
CLUSTERING_CONFIG_KEY = "clustering"


@dataclass
class Clustering:
    labels: np.ndarray  # (N,) int64: cluster number, 0 = the largest cluster; -1 = seen once

    @property
    def clusters(self) -> list[np.ndarray]:
        """Row indices of each cluster of two or more, largest first."""
        return [np.flatnonzero(self.labels == label) for label in range(int(self.labels.max(initial=-1)) + 1)]

    @property
    def singletons(self) -> np.ndarray:
        return np.flatnonzero(self.labels == -1)


def similarity_edges(embeddings: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) for every pair i < j with cosine >= threshold, computed block by block."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    firsts, seconds, weights = [], [], []
    for start in range(0, len(embeddings), BLOCK):
        block = embeddings[start : start + BLOCK] @ embeddings.T
        rows, columns = np.nonzero(block >= threshold)
        rows = rows + start
        keep = columns > rows
        firsts.append(rows[keep])
        seconds.append(columns[keep])
        weights.append(block[rows[keep] - start, columns[keep]])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(firsts), np.concatenate(seconds), np.concatenate(weights)


def connected_components(embeddings: np.ndarray, threshold: float) -> Clustering:
    first, second, _ = similarity_edges(embeddings, threshold)
    parent = np.arange(len(embeddings))

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return _numbered([root(item) for item in range(len(embeddings))])


def chinese_whispers(embeddings: np.ndarray, threshold: float, iterations: int = 30, seed: int = 0) -> Clustering:
    first, second, weight = similarity_edges(embeddings, threshold)
    count = len(embeddings)
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(count)]
    for a, b, w in zip(first.tolist(), second.tolist(), weight.tolist(), strict=True):
        neighbours[a].append((b, w))
        neighbours[b].append((a, w))
    labels = np.arange(count)
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = False
        for item in rng.permutation(count).tolist():
            if not neighbours[item]:
                continue
            votes: dict[int, float] = {}
            for other, w in neighbours[item]:
                votes[int(labels[other])] = votes.get(int(labels[other]), 0.0) + w
            best = max(sorted(votes), key=lambda label: votes[label])  # ties: the smaller label, deterministic
            if best != labels[item]:
                labels[item], changed = best, True
        if not changed:
            break
    return _numbered(labels.tolist())


def cluster_embeddings(embeddings: np.ndarray, threshold: float, method: str = "chinese-whispers", seed: int = 0) -> Clustering:
    if method not in CLUSTER_METHODS:
        raise ValueError(f"method must be one of {CLUSTER_METHODS}, got {method!r}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    if method == "components":
        return connected_components(embeddings, threshold)
    return chinese_whispers(embeddings, threshold, seed=seed)


def _numbered(raw: list[int]) -> Clustering:
    """Clusters numbered by size (largest 0; ties by first row), clusters of one marked -1."""
    raw = np.asarray(raw)
    values, first_rows, counts = np.unique(raw, return_index=True, return_counts=True)
    order = sorted(range(len(values)), key=lambda k: (-counts[k], first_rows[k]))
    labels = np.full(len(raw), -1, dtype=np.int64)
    number = 0
    for k in order:
        if counts[k] < 2:
            continue
        labels[raw == values[k]] = number
        number += 1
    return Clustering(labels)


def _as_groups(labels: np.ndarray) -> np.ndarray:
    """Singletons (-1) become groups of their own, for scoring."""
    labels = np.asarray(labels).copy()
    lone = labels == -1
    labels[lone] = labels.max(initial=-1) + 1 + np.arange(int(lone.sum()))
    return labels


def pairwise_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision / recall / F1 over the pairs of items placed in one cluster."""
    predicted, truth = _as_groups(predicted), np.asarray(truth)
    _, truth_ids = np.unique(truth, return_inverse=True)
    together_predicted = _pair_count(np.bincount(predicted))
    together_true = _pair_count(np.bincount(truth_ids))
    _, joint = np.unique(predicted * (truth_ids.max() + 1) + truth_ids, return_counts=True)
    both = _pair_count(joint)
    precision = both / together_predicted if together_predicted else 1.0
    recall = both / together_true if together_true else 1.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def bcubed_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """BCubed precision / recall / F1: for each item, the share of its cluster that is its identity, and
    of its identity that is in its cluster, averaged over items."""
    predicted, truth = _as_groups(predicted), np.asarray(truth)
    _, truth_ids = np.unique(truth, return_inverse=True)
    joint = predicted * (truth_ids.max() + 1) + truth_ids
    _, joint_inverse, joint_counts = np.unique(joint, return_inverse=True, return_counts=True)
    same_both = joint_counts[joint_inverse].astype(np.float64)
    precision = float(np.mean(same_both / np.bincount(predicted)[predicted]))
    recall = float(np.mean(same_both / np.bincount(truth_ids)[truth_ids]))
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def _pair_count(sizes: np.ndarray) -> float:
    sizes = sizes.astype(np.float64)
    return float(np.sum(sizes * (sizes - 1) / 2))


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def recorded_clustering_threshold(config: Any) -> tuple[float, str] | None:
    """The threshold a model folder records for grouping its embeddings, and where it came from."""
    record = getattr(config, CLUSTERING_CONFIG_KEY, None) if not isinstance(config, dict) else config.get(CLUSTERING_CONFIG_KEY)
    if not isinstance(record, dict) or not isinstance(record.get("threshold"), (int, float)):
        return None
    return float(record["threshold"]), str(record.get("source", "recorded in the model folder"))


def record_clustering_threshold(model_dir: str | os.PathLike, threshold: float, source: str) -> Path:
    """Write the grouping threshold into the folder's config.json (replaced whole: a killed write leaves the
    previous file); every other field stays as it was."""
    if not -1.0 < threshold < 1.0:
        raise ValueError(f"a cosine threshold lies in (-1, 1), got {threshold}")
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json; record the threshold in a saved model folder")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config[CLUSTERING_CONFIG_KEY] = {"threshold": round(float(threshold), 4), "source": source}
    return write_json_atomically(config_file, config)


__all__ = ["CLUSTERING_CONFIG_KEY", "CLUSTER_METHODS", "Clustering", "record_clustering_threshold", "recorded_clustering_threshold", "bcubed_scores", "chinese_whispers", "cluster_embeddings", "connected_components", "pairwise_scores"]
