"""CUHK03 single-gallery-shot CMC (torchreid / fast-reid `eval_cuhk03`).

For every valid query (same rule as Market-1501: gallery images of the query's person from the query's
camera are removed), `num_repeats` times: keep ONE randomly drawn gallery image per identity and record
where the query's identity lands among those one-per-identity images. CMC is the mean over repeats and
queries; mAP (and mINP, and the per-query arrays) come from the full multi-shot ranking, as in the
reference.

Random draws follow the reference exactly: queries in order, then repeats, then identities in the order
they first appear in the query's ranking, each drawing `randint(0, n_images_of_that_identity)` from a
legacy `numpy.random.RandomState`. So `seed=s` reproduces torchreid run right after `np.random.seed(s)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import checked_ranking_inputs
from .ranking import RankingResult, evaluate_ranking


def evaluate_cuhk03_single_gallery_shot(
    distmat: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_camids: Any,
    gallery_camids: Any,
    max_rank: int = 50,
    num_repeats: int = 10,
    seed: int | np.random.RandomState | None = None,
) -> RankingResult:
    """Single-gallery-shot CMC with multi-shot mAP / mINP.

    Args:
        distmat, query_pids, gallery_pids, query_camids, gallery_camids: as `evaluate_ranking`.
        max_rank: CMC length (capped at the gallery size).
        num_repeats: draws per query (10 in the reference).
        seed: int -> a fresh `RandomState(seed)`; a `RandomState` is used as is; None -> numpy's global
            legacy generator, exactly as the reference.
    """
    dist, q_pids, g_pids, q_cams, g_cams = checked_ranking_inputs(
        distmat, query_pids, gallery_pids, query_camids, gallery_camids
    )
    num_query = dist.shape[0]
    if num_repeats < 1:
        raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")
    rng = _legacy_generator(seed)

    # mAP / mINP / validity are the multi-shot Market-1501 ones (this also raises the clear error
    # when no query is valid).
    multi_shot = evaluate_ranking(
        dist, q_pids, g_pids, q_cams, g_cams, protocol="market1501", max_rank=max_rank
    )
    cmc_length = len(multi_shot.cmc)
    order = np.argsort(dist, axis=1, kind="stable")
    cmc_sum = np.zeros(cmc_length)
    for q in np.flatnonzero(multi_shot.first_match_rank >= 0):
        ranked = order[q]
        keep = ~((g_pids[ranked] == q_pids[q]) & (g_cams[ranked] == q_cams[q]))
        kept_pids = g_pids[ranked][keep]
        rank = _single_shot_ranks(kept_pids, q_pids[q], num_repeats, rng)
        cmc_sum += (rank[:, None] <= np.arange(cmc_length)[None, :]).mean(axis=0)
    valid = multi_shot.num_valid_queries
    return RankingResult(
        cmc=cmc_sum / valid,
        mAP=multi_shot.mAP,
        mINP=multi_shot.mINP,
        num_queries=num_query,
        num_valid_queries=valid,
        protocol="cuhk03",
        first_match_rank=multi_shot.first_match_rank,
        average_precision=multi_shot.average_precision,
        inverse_negative_penalty=multi_shot.inverse_negative_penalty,
    )


def _single_shot_ranks(
    kept_pids: np.ndarray, query_pid: int, num_repeats: int, rng: np.random.RandomState
) -> np.ndarray:
    """Rank (0-based) of the query's identity among one drawn image per identity, per repeat."""
    identities, first_seen, group, counts = np.unique(
        kept_pids, return_index=True, return_inverse=True, return_counts=True
    )
    draw_order = np.argsort(first_seen, kind="stable")  # identities as they first appear in the ranking
    members = np.argsort(group, kind="stable")  # ranking positions grouped by identity, ascending
    group_start = np.cumsum(counts) - counts
    draws = rng.randint(0, np.broadcast_to(counts[draw_order], (num_repeats, draw_order.size)))
    chosen = members[group_start[draw_order][None, :] + draws]  # (repeats, identities) ranking positions
    own = chosen[:, identities[draw_order] == query_pid]
    return (chosen < own).sum(axis=1)


def _legacy_generator(seed: int | np.random.RandomState | None) -> np.random.RandomState:
    if isinstance(seed, np.random.RandomState):
        return seed
    if seed is None:
        return np.random.mtrand._rand  # the global generator behind np.random.seed / np.random.choice
    return np.random.RandomState(seed)
