"""Verification thresholds chosen on development pairs, recorded in the model folder, used by the tools.

A cosine threshold is an operating point of one model: the same number means different things for two
models. So the model folder records its own (`config.calibration`), chosen on the development sets of
`../shared/data/identities` (`sapiensid calibrate`), for the two kinds of picture the model reads:

- faces: the LFW fold-7 pairs (300 same-person, 300 different-person);
- bodies: every cross-camera pair of CUHK03-val (same person or not).

For each kind, two thresholds: `best_accuracy` (the one that classifies the most pairs right; for the
bodies, whose pairs are mostly different people, the best balanced accuracy, the mean of the two
kinds' accuracies) and `far_1e-2` (the lowest threshold at which at most 1 % of the different-person
pairs are accepted; for the faces, of every different-person pair of the fold's photos, since 1 % of the
protocol's 300 is three pairs: a threshold set by the 3rd-highest accepted 2.7 % of the wider set).
`compare`, the Space and `SapiensIDPipeline.verify` use `best_accuracy` of faces when both pictures show a
face, of bodies otherwise, and say which threshold they use and where it came from.
Each kind also keeps its FAR curve (far_curve.py): when the verdict is on the best of several pairs (two
group photos), the threshold is raised so that different people pass as rarely as one pair does, and
the tools say how often different people pass a threshold and reach a score (`score_false_match_rate`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic_files import write_json_atomically
from ..cut_views import PHOTO_AS_IT_IS, rule_description
from .far_curve import FalseMatchRate, FarCurve, best_of_pairs_threshold, share_words

KINDS = ("face", "body")
OPERATING_POINTS = ("best_accuracy", "far_1e-2")
DEFAULT_OPERATING_POINT = "best_accuracy"
# Used only for a model folder without a calibration record, and said to be untuned wherever shown.
UNCALIBRATED_THRESHOLD = 0.30


def best_accuracy_threshold(scores: np.ndarray, same: np.ndarray, balanced: bool = False) -> tuple[float, float]:
    """(threshold, accuracy): the threshold t for which "same iff score >= t" is right most often (with
    `balanced`, the mean of the same-pair and different-pair accuracies). t lies halfway between two
    neighbouring scores, so it does not depend on ties at a pair's own score."""
    scores, same = _checked(scores, same)
    order = np.argsort(scores, kind="stable")
    scores, same = scores[order], same[order]
    # Accepting everything from position i on: same pairs below i are missed, different ones from i accepted.
    missed = np.r_[0, np.cumsum(same)]
    rejected_different = np.r_[0, np.cumsum(~same)]
    if balanced:
        accuracy = 0.5 * ((same.sum() - missed) / same.sum() + rejected_different / (~same).sum())
    else:
        accuracy = (same.sum() - missed + rejected_different) / len(same)
    # Only cut between distinct scores (a cut inside a run of equal scores cannot be expressed as ">= t").
    cuttable = np.r_[True, scores[1:] > scores[:-1], True]
    best = int(np.flatnonzero(cuttable)[np.argmax(accuracy[cuttable])])
    if best == 0:
        threshold = scores[0] - 1e-6
    elif best == len(scores):
        threshold = scores[-1] + 1e-6
    else:
        threshold = 0.5 * (scores[best - 1] + scores[best])
    return float(threshold), float(accuracy[best])


def threshold_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """The lowest threshold t at which "score >= t" accepts at most `far` of the different-person pairs."""
    scores, same = _checked(scores, same)
    return _threshold_at_far_of(scores[~same], far)


def _threshold_at_far_of(different_scores: np.ndarray, far: float) -> float:
    different = np.sort(different_scores)[::-1]
    allowed = int(np.floor(far * len(different)))  # different-person pairs that may be accepted
    if allowed >= len(different):
        return float(different[-1])
    return float(np.nextafter(different[allowed], np.inf))  # strictly above the first one that must be refused


def cross_camera_pairs(embeddings: np.ndarray, pids: np.ndarray, camids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores, same) of every (camera-0 photo, camera-1 photo) pair; embeddings L2-normalised."""
    first, second = camids == 0, camids == 1
    scores = embeddings[first] @ embeddings[second].T
    same = pids[first][:, None] == pids[second][None, :]
    return scores.reshape(-1), same.reshape(-1)


def different_person_scores(embeddings: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """The cosine of every pair i < j of different people; embeddings L2-normalised."""
    scores = embeddings @ embeddings.T
    first, second = np.triu_indices(len(embeddings), k=1)
    different = pids[first] != pids[second]
    return scores[first[different], second[different]]


@dataclass
class KindThresholds:
    best_accuracy: float
    accuracy: float  # at best_accuracy (balanced for the bodies)
    far_1e_2: float
    tar_at_far_1e_2: float
    pairs: int
    same_pairs: int
    far_curve: FarCurve | None = None  # FAR against threshold on a wider set of different-person pairs
    far_from: str | None = None  # the different-person pairs far_1e_2 was chosen on, when not the pairs' own

    @classmethod
    def from_pairs(
        cls, scores: np.ndarray, same: np.ndarray, balanced: bool, different_scores: np.ndarray | None = None,
        far_from: str | None = None,
    ) -> KindThresholds:  # fmt: skip
        """Both thresholds to 4 decimals (what a slider shows exactly; the FAR one rounded up, so it still
        accepts at most 1 %), with the accuracy and TAR measured at the rounded values. `different_scores`:
        a wider set of different-person pairs (described by `far_from`) the FAR threshold is chosen on
        instead of the pairs' own."""
        if (different_scores is None) != (far_from is None):
            raise ValueError("give the wider different-person scores together with what they are (far_from)")
        scores, same = _checked(scores, same)
        threshold = round(best_accuracy_threshold(scores, same, balanced)[0], 4)
        if different_scores is None:
            different = scores[~same]
        else:
            different = np.asarray(different_scores, dtype=np.float64).reshape(-1)
            if different.size == 0 or not np.isfinite(different).all():
                raise ValueError("the wider different-person scores must be finite and not empty")
        strict = math.ceil(_threshold_at_far_of(different, 1e-2) * 1e4) / 1e4
        accept = scores >= threshold
        if balanced:
            accuracy = 0.5 * (accept[same].mean() + (~accept[~same]).mean())
        else:
            accuracy = (accept == same).mean()
        tar = float((scores[same] >= strict).mean())
        return cls(threshold, float(accuracy), strict, tar, len(same), int(same.sum()), far_from=far_from)

    def with_far_curve(self, different_scores: Any, pairs_from: str) -> KindThresholds:
        """These thresholds with the FAR curve of `different_scores` (cosines of different-person pairs),
        which records the FAR of both thresholds on those pairs."""
        points = {"best_accuracy": self.best_accuracy, "far_1e-2": self.far_1e_2}
        return dataclasses.replace(self, far_curve=FarCurve.from_different_scores(different_scores, pairs_from, points))

    def to_record(self) -> dict[str, Any]:
        record = {
            "best_accuracy": self.best_accuracy,
            "accuracy_at_best": round(self.accuracy, 6),
            "far_1e-2": self.far_1e_2,
            "tar_at_far_1e-2": round(self.tar_at_far_1e_2, 6),
            "pairs": self.pairs,
            "same_pairs": self.same_pairs,
        }
        if self.far_curve is not None:
            record["far_curve"] = self.far_curve.to_record()
        if self.far_from is not None:
            record["far_from"] = self.far_from
        return record


def embedding_rule_words(flip: bool, cut_scales: Sequence[float]) -> str:
    """How embeddings were made, in words: flip, and the centre cuts if any (cut_views.py)."""
    words = _flip_words(flip)
    return words if tuple(cut_scales) == PHOTO_AS_IT_IS else f"{words}, {rule_description(cut_scales)}"


def _both_rule_words(record: dict[str, Any]) -> str:
    # Both parts always said, so two rules that differ read apart ("..., the photo as it is").
    return f"{_flip_words(record['flip'])}, {rule_description(record['cut_scales'])}"


def _flip_words(flip: bool) -> str:
    return "flip test-time augmentation" if flip else "no flip test-time augmentation"


def embedding_rule_record(flip: bool, cut_scales: Sequence[float]) -> dict[str, Any]:
    """How embeddings were made, as a calibration record keeps it (`embedded_with`)."""
    return {"flip": bool(flip), "cut_scales": [float(scale) for scale in cut_scales]}


def calibration_record(face: KindThresholds, body: KindThresholds, source: str, embedded_with: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a model folder's `config.calibration` holds; `embedded_with` (`embedding_rule_record`): how the
    embeddings the thresholds were chosen on were made."""
    record = {
        "face": {**face.to_record(), "pairs_from": "LFW fold 7 (development pairs)", "accuracy": "plain"},
        "body": {**body.to_record(), "pairs_from": "CUHK03 val, every cross-camera pair", "accuracy": "balanced"},
        "default": DEFAULT_OPERATING_POINT,
        "source": source,
    }
    if embedded_with is not None:
        record["embedded_with"] = embedded_with
    return record


@dataclass
class ChosenThreshold:
    """The threshold a tool uses for one comparison, and the words that say where it came from."""

    value: float
    kind: str | None  # "face" / "body", None when uncalibrated or given by the user
    origin: str

    def describe(self) -> str:
        return f"{self.value:.3f} ({self.origin})"


def choose_threshold(
    calibration: dict[str, Any] | None,
    both_faces: bool,
    model_name: str,
    given: float | None = None,
    embedded_with: dict[str, Any] | None = None,
    pairs: int = 1,
) -> ChosenThreshold:
    """The threshold for a comparison: the user's, else the model's calibrated one for faces (both pictures
    show a face) or bodies, else the untuned fallback, said to be one. `embedded_with`
    (`embedding_rule_record`): how the compared embeddings were made; when the thresholds were chosen on
    embeddings made otherwise (`--no-flip`, `--no-cuts`), the origin says so: the scores move, the threshold
    may not hold. `pairs`: how many pairs the compared one is the best of (two group photos); above one the
    calibrated threshold is raised along the kind's FAR curve (far_curve.py), and the origin says so, or
    says that the record has no curve to raise it with."""
    # A threshold not raised for the best of several pairs says so: more false matches pass it.
    unraised = f"; the best of {pairs} pairs is judged, not raised for it: more false matches pass" if pairs > 1 else ""
    if given is not None:
        passing = _pass_rate_words(calibration, both_faces, float(given)) if pairs == 1 and _made_as_calibrated(calibration, embedded_with) else ""
        return ChosenThreshold(float(given), None, "given with --threshold" + unraised + passing)
    if not calibration:
        return ChosenThreshold(
            UNCALIBRATED_THRESHOLD, None,
            f"untuned default: {model_name} records no calibrated threshold; run `sapiensid calibrate`{unraised}",
        )  # fmt: skip
    kind = "face" if both_faces else "body"
    point = calibration.get("default", DEFAULT_OPERATING_POINT)
    record = calibration[kind]
    reason = "both pictures show a face" if both_faces else "not both pictures show a face"
    kind_words = "faces" if both_faces else "bodies"
    origin = f"{kind_words}, {point.replace('_', ' ')} on {record['pairs_from']}, recorded in {model_name}; {reason}"
    chosen_on = calibration.get("embedded_with")
    if chosen_on is not None and embedded_with is not None and chosen_on != embedded_with:
        origin += (
            f"; NOTE: chosen on embeddings made with {_both_rule_words(chosen_on)}; these were made with "
            f"{_both_rule_words(embedded_with)}: the scores move, so it may not hold (leave out --no-flip / --no-cuts, "
            "or give --threshold)"
        )
    value = float(record[point])
    if pairs > 1:
        value, origin = _raised_for_best_of(record, point, value, pairs, origin, model_name)
    elif _made_as_calibrated(calibration, embedded_with):
        origin += _pass_rate_words(calibration, both_faces, value, point)
    return ChosenThreshold(value, kind, origin)


def _made_as_calibrated(calibration: dict[str, Any] | None, embedded_with: dict[str, Any] | None) -> bool:
    # Scores of embeddings made by another rule (--no-flip, --no-cuts) move: the curve does not describe them.
    chosen_on = (calibration or {}).get("embedded_with")
    return chosen_on is None or embedded_with is None or chosen_on == embedded_with


def _far_curve(calibration: dict[str, Any] | None, kind: str) -> FarCurve | None:
    record = (calibration or {}).get(kind) or {}
    return FarCurve.from_record(record["far_curve"]) if "far_curve" in record else None


def _pass_rate_words(calibration: dict[str, Any] | None, both_faces: bool, threshold: float, point: str | None = None) -> str:
    # A threshold's name ("best accuracy") does not say how many different people it lets through.
    kind = "face" if both_faces else "body"
    curve = _far_curve(calibration, kind)
    if curve is None:
        return ""
    if point in curve.far_at:  # a calibrated threshold: its rate was measured, not read off the curve
        rate = share_words(curve.far_at[point])
    else:
        rate = curve.rate_at(threshold).percent()
    return f"; {rate} of different-person {kind} pairs pass it ({curve.pairs_from})"


def score_false_match_rate(
    calibration: dict[str, Any] | None, both_faces: bool, score: float | None, pairs: int = 1,
    embedded_with: dict[str, Any] | None = None,
) -> FalseMatchRate | None:
    """How often different people reach `score`: the share of the calibration's different-person pairs of
    the pictures' kind (faces when both show a face, bodies otherwise) that score `score` or higher, for
    the best of `pairs` pairs when the score is the best of several (two group photos). None without a
    score, without a FAR curve in the record (`sapiensid calibrate` writes one), or when the compared
    embeddings were made by another rule than the curve's (`embedded_with`, `embedding_rule_record`)."""
    kind = "face" if both_faces else "body"
    curve = _far_curve(calibration, kind)
    if score is None or curve is None or not _made_as_calibrated(calibration, embedded_with):
        return None
    rate = dataclasses.replace(curve.rate_at(score), kind=kind)
    return rate.for_best_of(pairs) if pairs > 1 else rate


def threshold_false_match_rates(
    calibration: dict[str, Any] | None, threshold: float, embedded_with: dict[str, Any] | None = None
) -> dict[str, FalseMatchRate]:
    """kind ("face", "body") -> how often different people reach `threshold` on the calibration's FAR
    curves, for a threshold that is not a verification one (`cluster`'s); empty without curves or when the
    embeddings were made by another rule than the curves'."""
    if not _made_as_calibrated(calibration, embedded_with):
        return {}
    rates = {}
    for kind in KINDS:
        curve = _far_curve(calibration, kind)
        if curve is not None:
            rates[kind] = dataclasses.replace(curve.rate_at(threshold), kind=kind)
    return rates


def _raised_for_best_of(
    record: dict[str, Any], point: str, single: float, pairs: int, origin: str, model_name: str
) -> tuple[float, str]:
    if "far_curve" not in record:
        return single, (
            f"{origin}; NOTE: the best of {pairs} pairs is judged, and {model_name} records no FAR curve to raise "
            "the threshold for it (re-run `sapiensid calibrate`): more false matches pass than for one pair"
        )
    raised = best_of_pairs_threshold(FarCurve.from_record(record["far_curve"]), point, single, pairs)
    origin = (
        f"{origin}; raised from {single:.3f} because the best of {pairs} pairs is judged: the best of {pairs} "
        f"pairs of different people passes it as often as one pair passes {single:.3f} "
        f"({100 * raised.single_pair_far:.1f} % on {record['far_curve']['pairs_from']})"
    )
    if not raised.within_curve:
        origin += (
            f"; NOTE: that needs a FAR of {raised.per_pair_far:.1e} a pair, below what those pairs measure: "
            "more false matches pass (choose the people to compare, or give --threshold)"
        )
    return raised.value, origin


def record_calibration(model_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write `record` as `calibration` into the folder's config.json; the file is replaced whole (a killed
    write leaves the previous one), and every other field stays as it was."""
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json; calibrate a saved model folder")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["calibration"] = record
    return write_json_atomically(config_file, config)


def _checked(scores: Any, same: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    same = np.asarray(same, dtype=bool).reshape(-1)
    if scores.shape != same.shape:
        raise ValueError(f"{scores.size} scores for {same.size} labels")
    if not same.any() or same.all():
        raise ValueError("calibration needs both same-person and different-person pairs")
    if not np.isfinite(scores).all():
        raise ValueError("the scores are not all finite")
    return scores, same


__all__ = [
    "KINDS",
    "OPERATING_POINTS",
    "UNCALIBRATED_THRESHOLD",
    "ChosenThreshold",
    "KindThresholds",
    "best_accuracy_threshold",
    "calibration_record",
    "choose_threshold",
    "embedding_rule_record",
    "embedding_rule_words",
    "cross_camera_pairs",
    "different_person_scores",
    "record_calibration",
    "score_false_match_rate",
    "threshold_at_far",
    "threshold_false_match_rates",
]
