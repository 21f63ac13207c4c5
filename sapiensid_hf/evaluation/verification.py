"""Face verification accuracy, LFW style, exactly as insightface's `eval/verification.py`.

Pairs are split into `n_folds` contiguous folds (scikit-learn `KFold(shuffle=False)`: the first
`n % n_folds` folds get one extra pair). For each fold, the threshold on the squared L2 distance that
maximises accuracy on the other folds (first maximum on the grid `np.arange(0, 4, 0.01)`, a pair is
"same" when `distance < threshold`) is applied to the held-out fold. Reported: mean and standard
deviation (ddof=0) of the held-out accuracies, and the per-threshold TPR / FPR averaged over folds.

insightface feeds L2-normalised embeddings, and with flip test-time augmentation the normalised sum of
the embeddings of the image and of its mirror image: `fuse_flip` in `distance.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import as_numpy


@dataclass(frozen=True)
class VerificationResult:
    """Held-out accuracy per fold, the threshold each fold used, the fold-averaged ROC on the grid, and
    whether each pair was judged right at its own fold's threshold (`held_out_correct`: its mean over the
    pairs is the accuracy when the folds are of equal size)."""

    accuracy: float
    accuracy_std: float
    fold_accuracy: np.ndarray
    fold_threshold: np.ndarray
    thresholds: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    fpr: np.ndarray = field(repr=False)
    held_out_correct: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)

    def to_dict(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "mean_threshold": float(np.mean(self.fold_threshold)),
        }


def kfold_indices(num_items: int, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of scikit-learn `KFold(n_splits, shuffle=False)`; 1 fold = train on all."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    indices = np.arange(num_items)
    if n_folds == 1:
        return [(indices, indices)]
    if num_items < n_folds:
        raise ValueError(f"cannot split {num_items} pairs into {n_folds} folds")
    sizes = np.full(n_folds, num_items // n_folds)
    sizes[: num_items % n_folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [
        (np.concatenate([indices[:start], indices[stop:]]), indices[start:stop])
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def verification_accuracy(
    embeddings1: Any,
    embeddings2: Any,
    is_same: Any,
    n_folds: int = 10,
    thresholds: Any = None,
) -> VerificationResult:
    """K-fold verification accuracy of pairs `(embeddings1[i], embeddings2[i])`.

    Args:
        embeddings1, embeddings2: (num_pairs, dim) embeddings, normally L2-normalised.
        is_same: (num_pairs,) bools, True for a genuine (same identity) pair.
        n_folds: number of folds (10 for LFW, CFP, AgeDB, ...).
        thresholds: grid of squared-distance thresholds; default `np.arange(0, 4, 0.01)`.
    """
    first = as_numpy(embeddings1, "embeddings1")
    second = as_numpy(embeddings2, "embeddings2")
    if first.ndim != 2 or first.shape != second.shape:
        raise ValueError(
            f"embeddings1 {first.shape} and embeddings2 {second.shape} must be equal (num_pairs, dim) arrays"
        )
    labels = as_numpy(is_same, "is_same").astype(bool).reshape(-1)
    if labels.shape[0] != first.shape[0]:
        raise ValueError(f"is_same has {labels.shape[0]} entries for {first.shape[0]} pairs")
    if not np.isfinite(first).all() or not np.isfinite(second).all():
        raise ValueError("embeddings contain NaN or infinite values")
    grid = (
        np.arange(0, 4, 0.01) if thresholds is None else np.asarray(thresholds, dtype=np.float64).reshape(-1)
    )

    dist = np.sum(np.square(np.subtract(first, second)), 1)
    folds = kfold_indices(labels.shape[0], n_folds)
    fold_accuracy = np.zeros(len(folds))
    fold_threshold = np.zeros(len(folds))
    tprs = np.zeros((len(folds), grid.size))
    fprs = np.zeros((len(folds), grid.size))
    correct = np.zeros(labels.shape[0], dtype=bool)
    for fold, (train, test) in enumerate(folds):
        train_tp, _, train_tn, _ = _confusion(dist[train], labels[train], grid)
        best = int(np.argmax((train_tp + train_tn) / train.size))  # first maximum, as np.argmax there
        tp, fp, tn, fn = _confusion(dist[test], labels[test], grid)
        tprs[fold] = np.where(tp + fn == 0, 0.0, tp / np.maximum(tp + fn, 1))
        fprs[fold] = np.where(fp + tn == 0, 0.0, fp / np.maximum(fp + tn, 1))
        fold_accuracy[fold] = (tp[best] + tn[best]) / test.size
        fold_threshold[fold] = grid[best]
        correct[test] = (dist[test] < grid[best]) == labels[test]
    return VerificationResult(
        accuracy=float(np.mean(fold_accuracy)),
        accuracy_std=float(np.std(fold_accuracy)),
        fold_accuracy=fold_accuracy,
        fold_threshold=fold_threshold,
        thresholds=grid,
        tpr=np.mean(tprs, 0),
        fpr=np.mean(fprs, 0),
        held_out_correct=correct,
    )


def _confusion(dist: np.ndarray, same: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, ...]:
    """(tp, fp, tn, fn) at every threshold of `grid`, "same" meaning `dist < threshold`.

    Counting with a binary search over the sorted distances gives the same integers as comparing every
    pair with every threshold, in O(n log n) instead of O(n * len(grid)).
    """
    genuine = np.sort(dist[same])
    impostor = np.sort(dist[~same])
    tp = np.searchsorted(genuine, grid, side="left")
    fp = np.searchsorted(impostor, grid, side="left")
    return tp, fp, impostor.size - fp, genuine.size - tp
