"""How strong a search match is: how often pictures of different people score as high.

A ranking always has a best match, also when the person searched for is not in the gallery, so a score
alone is no evidence. Two figures, read off the FAR curves `sapiensid calibrate` records in the model
folder (evaluation/far_curve.py), say what it is worth; `sapiensid search` (every gallery kind), the
Space and Python (`search_evidence`) give the same ones:

- each match's false-match rate: the share of the development set's different-person pairs of the same
  kind (faces when the query and the match both show a face, bodies otherwise, as `compare` judges)
  that score that high or higher;
- for the best match, how often a gallery of the same entries without the person searched for gives a
  best score that high: the best of its different-person pairs, 1 - prod(1 - r) over the entries (each
  at the rate of its kind) for independent pairs. Entries of one person are correlated, and correlated
  scores make a high best score rarer, so the figure errs towards caution.

No figure is given for a model without curves, nor when the query or the gallery was embedded by another
rule (flip, centre cuts) than the curves were, or by different rules from each other: their scores are
not on the curves' scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .evaluation.calibration import embedding_rule_words, score_false_match_rate
from .evaluation.far_curve import FalseMatchRate, share_words

KIND_WORDS = {"face": "faces", "body": "bodies"}


@dataclass(frozen=True)
class BestScoreChance:
    """How often a gallery of `entries` entries (`face_entries` of them judged as faces: they and the query
    show one), none of them the person searched for, gives a best score of `score` or higher: `rate`,
    "about" it, or "over" / "under" it where the score lies beyond what a curve measures."""

    score: float
    rate: float
    bound: str
    entries: int
    face_entries: int

    def percent(self) -> str:
        return f"{self.bound} {share_words(self.rate)}"

    def describe(self) -> str:
        """E.g. "without the person searched for, these 250 gallery entries give a best score of 0.412 or
        higher in about 12 % of searches"."""
        entries = "this gallery entry gives a score" if self.entries == 1 else f"these {self.entries:,} gallery entries give a best score"
        return f"without the person searched for, {entries} of {self.score:.3f} or higher in {self.percent()} of searches"


@dataclass(frozen=True)
class SearchEvidence:
    """The false-match rate of each match (best first) and the chance of the best score without the person."""

    match_rates: tuple[FalseMatchRate, ...]
    best_score_chance: BestScoreChance | None

    def percents(self) -> list[str]:
        """Each match's rate in words, best first ("about 7.4 %"), as the ranking picture shows them."""
        return [rate.percent() for rate in self.match_rates]

    def match_words(self, rank: int) -> str:
        """The rate of the match at `rank` (1 = best) as a table shows it: "about 7.4 % (faces)"."""
        rate = self.match_rates[rank - 1]
        return f"{rate.percent()} ({KIND_WORDS[rate.kind]})"


def match_cell(evidence: SearchEvidence | None, rank: int) -> str:
    """A table cell: the rate of the match at `rank`, empty where no figure can be given."""
    return "" if evidence is None else evidence.match_words(rank)


def evidence_notes(queries: Sequence[str], evidences: Sequence[SearchEvidence | None]) -> list[str]:
    """The lines a ranking ends with: what a false-match rate is and which development pairs each kind's
    was read from, then, per query with evidence, how often its best score comes without the person."""
    shown = [(query, evidence) for query, evidence in zip(queries, evidences, strict=True) if evidence is not None]
    if not shown:
        return []
    sources = {
        rate.kind: f"{KIND_WORDS[rate.kind]}: {rate.pairs_from}, {rate.pairs:,} pairs"
        for _, evidence in shown for rate in evidence.match_rates
    }  # fmt: skip
    legend = (
        "false-match rate: the share of different-person pairs that score this high or higher on the model's "
        "development pairs, of faces when the query and the match both show a face, of bodies otherwise ("
        + "; ".join(sources[kind] for kind in KIND_WORDS if kind in sources) + ")"
        # Measured (benchmarks/bench_search_evidence.py): honest on the curve's own set, not on another one.
        + ("; body rates come from one set of pedestrians and can be several times higher on others (docs/cli.md)"
           if "body" in sources else "")
    )  # fmt: skip
    return [legend] + [
        f"- {query}: {evidence.best_score_chance.describe()}" for query, evidence in shown if evidence.best_score_chance
    ]


def search_evidence(
    calibration: dict[str, Any] | None,
    embedded_with: dict[str, Any] | None,
    query_face: bool,
    match_scores: Sequence[float],
    match_faces: Sequence[bool | None],
    entries: int,
    face_entries: int | None,
    gallery_embedded_with: dict[str, Any] | None,
) -> SearchEvidence | None:
    """The evidence of one query's matches (`match_scores`, best first; `match_faces`: whether each shows
    a face, None when unknown, read as a body), in a gallery of `entries` searchable entries of which
    `face_entries` show a face (None: unknown, all read as bodies, whose rates are the higher ones).
    `embedded_with` is the query's embedding rule (`embedding_rule_record`), `gallery_embedded_with` the
    gallery's (None where not recorded). None when no figure can be given (module docstring; `withheld_note`
    says why)."""
    if len(match_scores) == 0 or _withheld_reason(calibration, embedded_with, gallery_embedded_with) is not None:
        return None
    rates = []
    for score, face in zip(match_scores, match_faces, strict=True):
        rate = score_false_match_rate(calibration, bool(query_face and face), float(score), embedded_with=embedded_with)
        if rate is None:
            return None
        rates.append(rate)
    return SearchEvidence(tuple(rates), _best_score_chance(calibration, embedded_with, query_face, float(match_scores[0]), entries, face_entries))


def withheld_note(
    calibration: dict[str, Any] | None, embedded_with: dict[str, Any] | None, gallery_embedded_with: dict[str, Any] | None
) -> str | None:
    """Why `search_evidence` gives no figure for these rules, as a note for the user; None when it can."""
    reason = _withheld_reason(calibration, embedded_with, gallery_embedded_with)
    return None if reason is None else f"note: no false-match rates: {reason}"


def _withheld_reason(
    calibration: dict[str, Any] | None, embedded_with: dict[str, Any] | None, gallery_embedded_with: dict[str, Any] | None
) -> str | None:
    curves_rule = (calibration or {}).get("embedded_with")
    if not any("far_curve" in ((calibration or {}).get(kind) or {}) for kind in KIND_WORDS):
        return "the model folder records no FAR curves (`sapiensid calibrate` measures them)"
    if embedded_with is None:
        return "the queries do not record how they were embedded"
    if gallery_embedded_with is None:
        return "the gallery does not record how it was embedded (embed it again)"
    if gallery_embedded_with != embedded_with:
        return f"the gallery was embedded with {_rule_words(gallery_embedded_with)}, the queries with {_rule_words(embedded_with)}"
    if curves_rule is not None and curves_rule != embedded_with:
        return (
            f"the model's FAR curves were measured on embeddings made with {_rule_words(curves_rule)}, these were made "
            f"with {_rule_words(embedded_with)}"
        )
    return None


def _rule_words(record: dict[str, Any]) -> str:
    return embedding_rule_words(record["flip"], record["cut_scales"])


def _best_score_chance(
    calibration: dict[str, Any] | None, embedded_with: dict[str, Any], query_face: bool, score: float, entries: int,
    face_entries: int | None,
) -> BestScoreChance | None:
    faces = (face_entries or 0) if query_face else 0  # an entry is judged as a face only when both show one
    counts = {True: faces, False: entries - faces}
    stays_below, bounds = 0.0, set()  # log of the chance that every entry scores below `score`
    for face, count in counts.items():
        if count <= 0:
            continue
        rate = score_false_match_rate(calibration, face, score, embedded_with=embedded_with)
        if rate is None:
            return None
        stays_below += count * math.log1p(-rate.rate) if rate.rate < 1.0 else -math.inf
        bounds.add(rate.bound)
    # A rate measured as "over" its value makes the chance higher still; "under" only matters without one.
    bound = "over" if "over" in bounds else "under" if "under" in bounds else "about"
    return BestScoreChance(score, -math.expm1(stays_below), bound, entries, faces)


__all__ = ["BestScoreChance", "SearchEvidence", "evidence_notes", "match_cell", "search_evidence", "withheld_note"]
