"""How often different people pass a threshold, and the threshold for a verdict on the best of many pairs.

`compare` on two group photos scores every person of one against every person of the other and judges
the best pair. The best of N different-person pairs passes a threshold far more often than one pair does:
at the shipped model's face threshold, chosen for best accuracy on one pair at a time, about 30 % of
different-person pairs pass, so the best of 8 passes in about 94 % of cases. To keep a verdict's false-match
rate what the calibration promises for one pair (f), the best of N is judged at the threshold where a single
pair passes with probability 1 - (1 - f)^(1/N): for independent pairs, exactly the rate at which the best
of N passes then equals f. Pairs of one photo share people, so they are not independent; positively
correlated scores make the best of N pass less often than that, so the raised threshold errs on the side of
fewer false matches.

`FarCurve` is the false-accept rate (FAR) as a function of the threshold, measured on a development set's
different-person pairs and kept in the calibration record at fixed FARs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# The FARs at which a curve keeps its threshold; the smallest ones only where enough pairs measure them.
FAR_GRID = (
    0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 5e-3, 3e-3, 2e-3, 1e-3,
    5e-4, 3e-4, 2e-4, 1e-4, 5e-5, 3e-5, 2e-5, 1e-5,
)  # fmt: skip
MIN_PAIRS_ACCEPTED = 10  # a point of the curve rests on at least this many accepted different-person pairs


@dataclass(frozen=True)
class FarCurve:
    """Thresholds at falling FARs (`fars` descending, `thresholds` ascending), and the FAR measured on the
    same pairs at each of the record's operating points (`far_at`: point name -> FAR)."""

    fars: tuple[float, ...]
    thresholds: tuple[float, ...]
    far_at: dict[str, float]
    pairs: int
    pairs_from: str

    @classmethod
    def from_different_scores(cls, scores: Any, pairs_from: str, operating_points: dict[str, float]) -> FarCurve:
        """The curve of `scores`, the cosine similarities of different-person pairs; `operating_points`:
        name -> threshold, whose FAR on these pairs the curve records. Thresholds are rounded up to 4
        decimals, so each still accepts at most its FAR."""
        scores = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))[::-1]
        if scores.size == 0 or not np.isfinite(scores).all():
            raise ValueError("a FAR curve needs finite scores of at least one different-person pair")
        fars, thresholds = [], []
        for far in FAR_GRID:
            allowed = int(math.floor(far * scores.size))  # pairs that may pass
            if allowed < MIN_PAIRS_ACCEPTED or allowed >= scores.size:
                continue
            fars.append(far)
            # Strictly above the first pair that must be refused, then up to the 4 decimals a record keeps.
            thresholds.append(math.ceil(float(np.nextafter(scores[allowed], np.inf)) * 1e4) / 1e4)
        if not fars:
            raise ValueError(f"{scores.size} different-person pairs cannot measure a FAR of {FAR_GRID[0]} or below")
        far_at = {name: round(float((scores >= value).mean()), 6) for name, value in operating_points.items()}
        return cls(tuple(fars), tuple(thresholds), far_at, int(scores.size), pairs_from)

    def threshold_at(self, far: float) -> tuple[float, bool]:
        """(threshold, within): the threshold at which a pair passes with probability `far`, interpolated
        linearly in log FAR between the kept points; `within` is False when `far` is below the smallest
        FAR the pairs measure, and the threshold returned, the last one kept, is then too low for it."""
        if far >= self.fars[0]:
            return self.thresholds[0], True
        if far < self.fars[-1]:
            return self.thresholds[-1], False
        # The kept point just above `far` and the one just below it.
        below = next(index for index, kept in enumerate(self.fars) if kept <= far)
        high, low = self.fars[below - 1], self.fars[below]
        t_high, t_low = self.thresholds[below - 1], self.thresholds[below]
        share = (math.log(high) - math.log(far)) / (math.log(high) - math.log(low))
        return round(t_high + share * (t_low - t_high), 4), True

    def rate_at(self, score: float) -> FalseMatchRate:
        """The share of the curve's different-person pairs that score `score` or higher, interpolated
        linearly in log FAR between the kept points (the inverse of `threshold_at`); below the lowest kept
        threshold it is "over" the largest FAR kept, above the highest it is "under" the smallest."""
        score = float(score)
        if score < self.thresholds[0]:
            return FalseMatchRate(self.fars[0], "over", self.pairs, self.pairs_from)
        if score >= self.thresholds[-1]:
            return FalseMatchRate(self.fars[-1], "about" if score == self.thresholds[-1] else "under", self.pairs, self.pairs_from)
        # The kept threshold at or below `score` and the one above it.
        above = next(index for index, kept in enumerate(self.thresholds) if kept > score)
        t_low, t_high = self.thresholds[above - 1], self.thresholds[above]
        f_low, f_high = self.fars[above - 1], self.fars[above]
        share = (score - t_low) / (t_high - t_low)
        rate = math.exp(math.log(f_low) + share * (math.log(f_high) - math.log(f_low)))
        return FalseMatchRate(rate, "about", self.pairs, self.pairs_from)

    def to_record(self) -> dict[str, Any]:
        return {
            "pairs_from": self.pairs_from,
            "different_pairs": self.pairs,
            "far_at": dict(self.far_at),
            "thresholds_at_far": [[far, threshold] for far, threshold in zip(self.fars, self.thresholds, strict=True)],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FarCurve:
        points = record["thresholds_at_far"]
        return cls(
            tuple(float(far) for far, _ in points), tuple(float(threshold) for _, threshold in points),
            {name: float(value) for name, value in record["far_at"].items()}, int(record["different_pairs"]),
            str(record["pairs_from"]),
        )  # fmt: skip


def share_words(rate: float) -> str:
    """A share in words as the tools print it: "7.4 %", "0.39 %", "0.005 %" (two significant digits below 1 %)."""
    value = 100 * rate
    return f"{value:.1f} %" if value >= 1 else f"{value:.2g} %"


@dataclass(frozen=True)
class FalseMatchRate:
    """How often different people score at least a similarity: the share `rate` of a development set's
    different-person pairs (`pairs` of them, from `pairs_from`, of pictures of `kind`), "about" that share, or
    "over" / "under" it where the score lies beyond what the kept curve measures. `best_of` > 1: the rate for the best of that
    many pairs (two group photos), 1 - (1 - rate)^N for independent pairs."""

    rate: float
    bound: str  # "about", "over" or "under"
    pairs: int
    pairs_from: str
    best_of: int = 1
    kind: str | None = None  # "face" / "body": which of the model's curves the rate was read from

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "bound": self.bound, "best_of": self.best_of, "kind": self.kind,
                "pairs_from": self.pairs_from, "different_pairs": self.pairs}  # fmt: skip

    def for_best_of(self, pairs: int) -> FalseMatchRate:
        """The same score reached by the best of `pairs` different-person pairs."""
        if pairs < 1:
            raise ValueError(f"the best of {pairs} pairs: need at least one pair")
        rate = -math.expm1(pairs * math.log1p(-self.rate)) if self.rate < 1.0 else 1.0
        return dataclasses.replace(self, rate=rate, best_of=pairs)

    def percent(self) -> str:
        """The rate in words: "about 7.4 %", "over 50.0 %", "under 0.005 %"."""
        return f"{self.bound} {share_words(self.rate)}"

    def describe(self) -> str:
        """How rare the score is among different people, e.g. "about 7.4 % of different-person face pairs
        score this high or higher (every different-person pair of LFW fold 7's 813 photos: 329,256)"."""
        pairs = f"different-person {self.kind} pairs" if self.kind else "different-person pairs"
        source = f"({self.pairs_from}: {self.pairs:,})"
        if self.kind == "body":  # benchmarks/bench_search_evidence.py: 1.5-3.5x on a pedestrian set the curve did not see
            source += "; on other photo sets of people it can be several times higher"
        if self.best_of > 1:
            return f"the best of {self.best_of} {pairs} scores this high or higher in {self.percent()} of cases {source}"
        return f"{self.percent()} of {pairs} score this high or higher {source}"


def far_of_best_of(single_pair_far: float, pairs: int) -> float:
    """The FAR one pair must have so that the best of `pairs` independent different-person pairs passes
    with probability `single_pair_far`: 1 - (1 - f)^(1/N)."""
    if pairs < 1:
        raise ValueError(f"the best of {pairs} pairs: need at least one pair")
    if not 0.0 <= single_pair_far <= 1.0:
        raise ValueError(f"a FAR lies in [0, 1], got {single_pair_far}")
    return -math.expm1(math.log1p(-single_pair_far) / pairs) if single_pair_far < 1.0 else 1.0


@dataclass(frozen=True)
class BestOfPairsThreshold:
    """The threshold for the best of `pairs` pairs, raised from `single` (the one-pair threshold)."""

    value: float
    single: float
    pairs: int
    single_pair_far: float  # what `single` lets through on the curve's pairs, kept for the best of N
    per_pair_far: float  # what each pair may let through at `value`
    within_curve: bool  # False: the pairs measure no FAR that low, `value` is the highest kept and too low


def best_of_pairs_threshold(curve: FarCurve, operating_point: str, single: float, pairs: int) -> BestOfPairsThreshold:
    """The threshold at which the best of `pairs` different-person pairs passes as often as one pair does
    at `single`, the threshold of `operating_point` (module docstring)."""
    if operating_point not in curve.far_at:
        raise KeyError(f"the FAR curve records no FAR at the operating point {operating_point!r}")
    single_far = curve.far_at[operating_point]
    per_pair = far_of_best_of(single_far, pairs)
    value, within = curve.threshold_at(per_pair) if pairs > 1 else (single, True)
    return BestOfPairsThreshold(max(single, value), single, pairs, single_far, per_pair, within)


__all__ = ["FAR_GRID", "BestOfPairsThreshold", "FalseMatchRate", "FarCurve", "best_of_pairs_threshold", "far_of_best_of", "share_words"]
