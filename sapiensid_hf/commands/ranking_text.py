"""The false-match columns every ranking of `sapiensid search` writes to its CSV (search_evidence.py)."""

from __future__ import annotations

from ..search_evidence import SearchEvidence

# Empty where no figure can be given; the chance of the best score is on the query's rank-1 row only.
EVIDENCE_COLUMNS = (
    "false_match_rate", "false_match_bound", "false_match_kind", "best_score_chance_without_person", "best_score_chance_bound",
)  # fmt: skip


def evidence_csv_cells(evidence: SearchEvidence | None, rank: int) -> list[str]:
    """The EVIDENCE_COLUMNS of the match at `rank` (1 = best)."""
    if evidence is None:
        return [""] * len(EVIDENCE_COLUMNS)
    rate, chance = evidence.match_rates[rank - 1], evidence.best_score_chance
    best = [f"{chance.rate:.6g}", chance.bound] if rank == 1 and chance is not None else ["", ""]
    return [f"{rate.rate:.6g}", rate.bound, str(rate.kind)] + best


__all__ = ["EVIDENCE_COLUMNS", "evidence_csv_cells"]
