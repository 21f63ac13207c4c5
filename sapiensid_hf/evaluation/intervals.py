"""95 % intervals of the development figures: how far a figure could move with other people of the same kind.

A development set is a few hundred people (CUHK03-val 100, Con-ReID's test people 53, LFW fold 7's 600
pairs), so its figures carry a sampling error of several points; a model is shipped only when it is at or
above the one before on every figure, and an interval says when a difference is within that error.

Percentile bootstrap (Efron), seeded, so a run always writes the same interval:
- rankings: the query people are drawn again with replacement, each with all of their queries (a
  person's queries succeed or fail together, so drawing queries one by one would understate the spread);
- pairs (LFW): the same-person and the different-person pairs are drawn again apart, each kind keeping
  its count, as the protocol fixes 300 of each. The pairs of a fold share few people, so they are drawn
  one by one. Accuracy is each pair's verdict at the threshold its cross-validation fold chose; the
  choice of threshold is not drawn again (the fold-to-fold standard deviation shows that part).
The gallery of a ranking stays as it is: the interval is for these galleries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

INTERVAL_LEVEL = 0.95
INTERVAL_RESAMPLES = 1000
INTERVAL_SEED = 0


def interval_settings() -> dict[str, Any]:
    """How the intervals of a results record were drawn (kept beside them)."""
    return {"level": INTERVAL_LEVEL, "resamples": INTERVAL_RESAMPLES, "seed": INTERVAL_SEED}


def people_interval(
    values: Any, people: Any, resamples: int = INTERVAL_RESAMPLES, level: float = INTERVAL_LEVEL, seed: int = INTERVAL_SEED
) -> list[float]:
    """[low, high]: the percentile interval of the mean of `values` (one a query) when the people (`people`:
    one id a value) are drawn again with replacement, each with all of their values."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    people = np.asarray(people).reshape(-1)
    if values.size == 0 or values.size != people.size:
        raise ValueError(f"an interval needs one person id a value: {values.size} values, {people.size} ids")
    _, person = np.unique(people, return_inverse=True)
    sums = np.bincount(person, weights=values)
    counts = np.bincount(person).astype(np.float64)
    drawn = np.random.default_rng(seed).integers(len(sums), size=(resamples, len(sums)))
    return _percentiles(sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1), level)


def pairs_interval(
    statistic: Callable[[np.ndarray], float], same: Any, resamples: int = INTERVAL_RESAMPLES,
    level: float = INTERVAL_LEVEL, seed: int = INTERVAL_SEED,
) -> list[float]:  # fmt: skip
    """[low, high]: the percentile interval of `statistic(rows)` (rows: indices into the pairs) when the
    same-person and the different-person pairs are drawn again with replacement apart, each kind
    keeping its count."""
    same = np.asarray(same, dtype=bool).reshape(-1)
    kinds = [np.flatnonzero(same), np.flatnonzero(~same)]
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for draw in range(resamples):
        values[draw] = statistic(np.concatenate([rng.choice(rows, size=rows.size) for rows in kinds if rows.size]))
    return _percentiles(values, level)


def ranking_intervals(result: Any, query_people: Any) -> dict[str, list[float]]:
    """The intervals of a `RankingResult`'s rank-1 and mAP over its query people (`query_people`: the
    person of each query, in the ranking's order); the queries it skipped (no true match) are left out,
    as its figures leave them out."""
    per_query = ranking_per_query(result, query_people)
    return {metric: people_interval(per_query[metric], per_query["people"]) for metric in ("rank1", "mAP")}


def verification_intervals(result: Any, same: Any, scores: Any, fars: tuple[float, ...]) -> dict[str, list[float]]:
    """The intervals of a `VerificationResult`'s accuracy (each pair's verdict at its fold's threshold) and
    of the TAR at each of `fars` (`tar@far=<far>`), the pairs drawn again by kind."""
    from .roc import tar_at_far

    same = np.asarray(same, dtype=bool).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    correct = result.held_out_correct
    intervals = {"accuracy": pairs_interval(lambda rows: float(correct[rows].mean()), same)}
    for far in fars:
        intervals[f"tar@far={far:g}"] = pairs_interval(lambda rows, far=far: tar_at_far(same[rows], scores[rows], (far,))[far], same)
    return intervals


def ranking_per_query(result: Any, query_people: Any) -> dict[str, list]:
    """What a paired comparison of two models' rankings needs: each scored query's person, rank-1 hit and
    average precision (the queries a ranking skips depend on the ids only, so two models skip the same)."""
    scored = result.first_match_rank >= 0
    return {
        "people": np.asarray(query_people).reshape(-1)[scored].tolist(),
        "rank1": (result.first_match_rank[scored] == 0).astype(float).tolist(),
        "mAP": result.average_precision[scored].tolist(),
    }


def paired_ranking_differences(first: dict[str, list], second: dict[str, list]) -> dict[str, dict[str, Any]]:
    """Rank-1 and mAP of `first` less those of `second` (`ranking_per_query` of two models on the same
    queries), each with the interval of the difference when the same people are drawn for both: the
    two models share the draw's luck, so the interval is that of the difference, not of either figure."""
    if first["people"] != second["people"]:
        raise ValueError("a paired comparison needs the same queries for both models")
    differences = {}
    for metric in ("rank1", "mAP"):
        change = np.asarray(first[metric]) - np.asarray(second[metric])
        differences[metric] = {"difference": float(change.mean()), "interval": people_interval(change, first["people"])}
    return differences


def paired_pairs_differences(
    first: dict[str, list], second: dict[str, list], fars: tuple[float, ...]
) -> dict[str, dict[str, Any]]:
    """Accuracy and the TAR at each of `fars` of `first` less those of `second` (each: `same`, `scores` and
    `correct`, the held-out verdicts, of one model on the same pairs), the pairs drawn again by kind alike
    for both."""
    from .roc import tar_at_far

    same = np.asarray(first["same"], dtype=bool)
    if not np.array_equal(same, np.asarray(second["same"], dtype=bool)):
        raise ValueError("a paired comparison needs the same pairs for both models")
    change = np.asarray(first["correct"], dtype=float) - np.asarray(second["correct"], dtype=float)
    differences = {
        "accuracy": {"difference": float(change.mean()), "interval": pairs_interval(lambda rows: float(change[rows].mean()), same)}
    }
    scores = [np.asarray(model["scores"], dtype=np.float64) for model in (first, second)]

    def tar_change(rows: np.ndarray, far: float) -> float:
        return tar_at_far(same[rows], scores[0][rows], (far,))[far] - tar_at_far(same[rows], scores[1][rows], (far,))[far]

    everything = np.arange(same.size)
    for far in fars:
        differences[f"tar@far={far:g}"] = {
            "difference": tar_change(everything, far),
            "interval": pairs_interval(lambda rows, far=far: tar_change(rows, far), same),
        }
    return differences


def mean_of_parts_interval(
    parts: Sequence[dict[str, list]], metric: str, resamples: int = INTERVAL_RESAMPLES, level: float = INTERVAL_LEVEL,
    seed: int = INTERVAL_SEED,
) -> list[float]:  # fmt: skip
    """[low, high] of the mean over `parts` (`ranking_per_query` records, e.g. CUHK03-val's two camera
    directions) of each part's mean `metric`, the same people drawn for every part: a person who queries in
    both directions is drawn, or left out, in both. With one part it is `people_interval`."""
    people = np.unique(np.concatenate([np.asarray(part["people"]) for part in parts]))
    drawn = np.random.default_rng(seed).integers(len(people), size=(resamples, len(people)))
    means = []
    for part in parts:
        person = np.searchsorted(people, np.asarray(part["people"]))
        sums = np.bincount(person, weights=np.asarray(part[metric], dtype=np.float64), minlength=len(people))
        counts = np.bincount(person, minlength=len(people)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1))
    mean = np.mean(means, axis=0)
    return _percentiles(mean[np.isfinite(mean)], level)  # a draw without any query of a part has no mean there


def _percentiles(values: np.ndarray, level: float) -> list[float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


__all__ = [
    "INTERVAL_LEVEL",
    "INTERVAL_RESAMPLES",
    "INTERVAL_SEED",
    "interval_settings",
    "mean_of_parts_interval",
    "paired_pairs_differences",
    "paired_ranking_differences",
    "pairs_interval",
    "people_interval",
    "ranking_intervals",
    "ranking_per_query",
    "verification_intervals",
]
