"""ROC curve and TAR@FAR, as insightface's IJB-B / IJB-C evaluation computes them.

`roc_curve` follows scikit-learn's `roc_curve` (descending score thresholds at every distinct score,
`drop_intermediate=True` removes points that lie on a straight segment, a first point (0, 0) at
threshold +inf). `tar_at_far` then takes, for each target FAR, the ROC point whose FPR is closest to it;
among equally close points the one with the largest TPR (insightface flips the curve and takes the first
minimum of `|fpr - target|`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import as_numpy

DEFAULT_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def _labels_and_scores(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = as_numpy(labels, "labels").reshape(-1)
    s = as_numpy(scores, "scores").reshape(-1).astype(np.float64, copy=False)
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) must have the same length")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    unique = np.unique(y)
    if not np.isin(unique, [0, 1]).all():
        raise ValueError(f"labels must be 0/1 or bool, got values {unique[:5].tolist()}")
    y = y.astype(bool)
    if y.all() or not y.any():
        kind = "genuine (1)" if y.all() else "impostor (0)"
        raise ValueError(
            f"every one of the {y.size} labels is {kind}: a ROC needs both genuine and impostor pairs"
        )
    return y, s


def roc_curve(
    labels: Any, scores: Any, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for similarity `scores` (higher = more likely the same identity)."""
    y, s = _labels_and_scores(labels, scores)
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y, dtype=np.int64)[last_of_each_score]
    fps = 1 + last_of_each_score - tps
    thresholds = s[last_of_each_score]
    if drop_intermediate and len(fps) > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[corner], tps[corner], thresholds[corner]
    fps = np.r_[0, fps]
    tps = np.r_[0, tps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def tar_at_far(labels: Any, scores: Any, fars: tuple[float, ...] = DEFAULT_FARS) -> dict[float, float]:
    """True-accept rate at each target false-accept rate, from the ROC of `scores`.

    A target below 1 / num_impostor_pairs cannot be resolved; the nearest ROC point is still reported,
    as in the reference.
    """
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = fpr[::-1], tpr[::-1]
    return {float(far): float(tpr[int(np.argmin(np.abs(fpr - far)))]) for far in fars}
