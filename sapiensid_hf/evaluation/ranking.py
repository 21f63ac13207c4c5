"""Re-identification ranking metrics (CMC, mAP, mINP) from a query x gallery distance matrix.

The numbers equal torchreid / fast-reid `eval_market1501` and the CAL reference (`evaluate`,
`evaluate_with_clothes`) on the same inputs, up to floating-point summation order in the means
(relative difference below 1e-12). The rules are in `reid_protocols`.

Tie policy: the gallery is ranked by (distance, gallery index), i.e. a stable ascending sort, so of two
items at exactly the same distance the one earlier in the gallery ranks first. The references call
`np.argsort` with its default (unstable) quicksort, so under exact ties they may order items
arbitrarily; with no ties the rankings are identical.

Nothing is sorted at full gallery size: for every query only its true matches are sorted, and each
other kept gallery item is placed among them by binary search. The position of the k-th true match in
the ranking (junk removed) is then k plus the number of kept non-matches ahead of it, which is all that
CMC, AP and INP need.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._validation import checked_ranking_inputs, id_vector
from .reid_protocols import (
    CLOTHES_PROTOCOLS,
    NoValidQueryError,
    check_protocol,
    explain_no_valid_query,
    match_masks,
)

logger = logging.getLogger(__name__)

# Query rows per block: bounds the temporary (block x gallery) tensors to a few tens of MB.
_ELEMENTS_PER_BLOCK = 1 << 22


@dataclass(frozen=True)
class RankingResult:
    """CMC / mAP / mINP of one ranking evaluation.

    `cmc[r]` is the fraction of valid queries whose first true match is within the top `r + 1`.
    Per-query arrays hold one entry per query; skipped queries (no true match under the protocol)
    have `first_match_rank == -1` and NaN AP / INP.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_queries: int
    num_valid_queries: int
    protocol: str
    first_match_rank: np.ndarray = field(repr=False)
    average_precision: np.ndarray = field(repr=False)
    inverse_negative_penalty: np.ndarray = field(repr=False)

    @property
    def num_skipped_queries(self) -> int:
        return self.num_queries - self.num_valid_queries

    def to_dict(self, ranks: tuple[int, ...] = (1, 5, 10, 20)) -> dict[str, float]:
        """Flat summary: `rank1 ... rankN`, `mAP`, `mINP` (fractions in [0, 1]) and query counts."""
        summary = {f"rank{r}": float(self.cmc[min(r, len(self.cmc)) - 1]) for r in ranks}
        summary.update(
            mAP=self.mAP,
            mINP=self.mINP,
            num_valid_queries=self.num_valid_queries,
            num_skipped_queries=self.num_skipped_queries,
        )
        return summary


def evaluate_ranking(
    distmat: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_camids: Any,
    gallery_camids: Any,
    query_clothes_ids: Any = None,
    gallery_clothes_ids: Any = None,
    protocol: str = "market1501",
    max_rank: int | None = 50,
) -> RankingResult:
    """Rank the gallery for every query and score it under `protocol`.

    Args:
        distmat: (num_query, num_gallery) distances, smaller = more similar (numpy or torch; float32 and
            float64 are ranked in their own precision).
        query_pids, gallery_pids, query_camids, gallery_camids: integer ids.
        query_clothes_ids, gallery_clothes_ids: integer clothes ids, required by `cc` and `sc`.
        protocol: one of `reid_protocols.RANKING_PROTOCOLS`.
        max_rank: length of the returned CMC curve (capped at the gallery size); None = gallery size.

    Raises:
        NoValidQueryError: when no query has a true match, with the reason (e.g. every camid equal).
    """
    check_protocol(protocol)
    dist, q_pids, g_pids, q_cams, g_cams = checked_ranking_inputs(
        distmat, query_pids, gallery_pids, query_camids, gallery_camids
    )
    num_query, num_gallery = dist.shape
    q_clothes = g_clothes = None
    if protocol in CLOTHES_PROTOCOLS:
        if query_clothes_ids is None or gallery_clothes_ids is None:
            raise ValueError(f"protocol {protocol!r} needs query_clothes_ids and gallery_clothes_ids")
        q_clothes = id_vector(query_clothes_ids, "query_clothes_ids", num_query)
        g_clothes = id_vector(gallery_clothes_ids, "gallery_clothes_ids", num_gallery)
    if max_rank is not None and max_rank < 1:
        raise ValueError(f"max_rank must be >= 1 or None, got {max_rank}")
    cmc_length = num_gallery if max_rank is None else min(max_rank, num_gallery)

    first = np.full(num_query, -1, dtype=np.int64)
    ap = np.full(num_query, np.nan)
    inp = np.full(num_query, np.nan)
    dist_t = torch.from_numpy(np.ascontiguousarray(dist))
    gallery_ids = (_tensor(g_pids), _tensor(g_cams), _tensor(g_clothes))
    block = max(1, _ELEMENTS_PER_BLOCK // num_gallery)
    for start in range(0, num_query, block):
        rows = slice(start, min(start + block, num_query))
        query_ids = (
            _tensor(q_pids[rows]),
            _tensor(q_cams[rows]),
            None if q_clothes is None else _tensor(q_clothes[rows]),
        )
        good, same_person = match_masks(
            protocol, query_ids[0], gallery_ids[0], query_ids[1], gallery_ids[1], query_ids[2], gallery_ids[2]
        )
        # Junk and true matches are exactly the query's own person; everyone else competes.
        n_good, positions = true_match_positions(dist_t[rows], good, ~same_person)
        scores = _query_scores(n_good, positions)
        first[rows], ap[rows], inp[rows] = (s.numpy() for s in scores)

    valid = first >= 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        reason = explain_no_valid_query(protocol, q_pids, g_pids, q_cams, g_cams, q_clothes, g_clothes)
        raise NoValidQueryError(
            f"no query has a valid true match in the gallery under protocol {protocol!r}: {reason}"
        )
    if num_valid < num_query:
        logger.info(
            "%d of %d queries have no true match under %r and are skipped",
            num_query - num_valid,
            num_query,
            protocol,
        )
    hits = np.bincount(np.minimum(first[valid], cmc_length), minlength=cmc_length + 1)[:cmc_length]
    cmc = np.cumsum(hits) / num_valid
    return RankingResult(
        cmc=cmc,
        mAP=float(np.mean(ap[valid])),
        mINP=float(np.mean(inp[valid])),
        num_queries=num_query,
        num_valid_queries=num_valid,
        protocol=protocol,
        first_match_rank=first,
        average_precision=ap,
        inverse_negative_penalty=inp,
    )


def _tensor(array: np.ndarray | None) -> torch.Tensor | None:
    return None if array is None else torch.from_numpy(np.ascontiguousarray(array))


def true_match_positions(
    dist: torch.Tensor, good: torch.Tensor, competitor: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based ranking positions of every true match, per row, in ranking order.

    Args:
        dist: (B, G) distances.
        good: (B, G) true matches.
        competitor: (B, G) kept items that are not true matches (junk is neither good nor competitor).

    Returns:
        `n_good` (B,) and `positions` (B, K) with K = max n_good; entries past a row's `n_good` are padding.
    """
    batch, gallery = dist.shape
    n_good = good.sum(dim=1)
    width = int(n_good.max()) if batch else 0
    if width == 0:
        return n_good, torch.zeros(batch, 0, dtype=torch.int64)

    # Gather each row's true matches (in gallery order) into a padded (B, K) block and sort it by
    # (distance, index): a stable sort of index-ordered entries.
    rows, cols = good.nonzero(as_tuple=True)
    row_start = torch.cumsum(n_good, 0) - n_good
    slot = torch.arange(rows.numel()) - row_start[rows]
    good_dist = torch.full((batch, width), float("inf"), dtype=dist.dtype)
    good_index = torch.full((batch, width), gallery, dtype=torch.int64)
    good_dist[rows, slot] = dist[rows, cols]
    good_index[rows, slot] = cols
    sorted_dist, order = torch.sort(good_dist, dim=1, stable=True)
    sorted_index = good_index.gather(1, order)

    # For each competitor: how many true matches rank ahead of it.
    ahead = torch.searchsorted(sorted_dist, dist.contiguous(), right=False)
    probe = sorted_dist.gather(1, ahead.clamp(max=width - 1))
    tie_rows, tie_cols = (competitor & (probe == dist)).nonzero(as_tuple=True)
    if tie_rows.numel():
        ahead[tie_rows, tie_cols] += _tied_matches_with_lower_index(
            sorted_dist, sorted_index, gallery, tie_rows, tie_cols, ahead[tie_rows, tie_cols]
        )

    # Competitors ahead of the k-th true match = competitors with fewer than k + 1 matches ahead.
    histogram = torch.zeros(batch, width + 1, dtype=torch.int64)
    histogram.scatter_add_(1, ahead, competitor.to(torch.int64))
    competitors_ahead = histogram.cumsum(dim=1)[:, :width]
    positions = competitors_ahead + torch.arange(width)
    return n_good, positions


def _tied_matches_with_lower_index(
    sorted_dist: torch.Tensor,
    sorted_index: torch.Tensor,
    gallery: int,
    rows: torch.Tensor,
    cols: torch.Tensor,
    block_start: torch.Tensor,
) -> torch.Tensor:
    """For competitors whose distance equals some true match's: how many of those equal-distance
    matches have a lower gallery index (and so rank ahead under the stable tie policy)."""
    batch, width = sorted_dist.shape
    # Within a row, equal distances form a block ordered by index. Key every entry by
    # (row, first slot of its block, index): the flattened keys never decrease.
    first_slot = torch.searchsorted(sorted_dist, sorted_dist, right=False)
    stride = gallery + 1
    row_ids = torch.arange(batch)[:, None]
    keys = ((row_ids * (width + 1) + first_slot) * stride + sorted_index).flatten()
    probes = (rows * (width + 1) + block_start) * stride + cols
    return torch.searchsorted(keys, probes, right=False) - (rows * width + block_start)


def _query_scores(
    n_good: torch.Tensor, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """First-match rank (-1 if none), AP and INP (NaN if none) per row."""
    batch, width = positions.shape
    valid = n_good > 0
    first = torch.full((batch,), -1, dtype=torch.int64)
    ap = torch.full((batch,), float("nan"), dtype=torch.float64)
    inp = torch.full((batch,), float("nan"), dtype=torch.float64)
    if width == 0:
        return first, ap, inp
    slots = torch.arange(width)
    is_match = slots[None, :] < n_good[:, None]
    precision = (slots + 1).to(torch.float64)[None, :] / (positions + 1).to(torch.float64)
    ap_all = torch.where(is_match, precision, 0.0).sum(dim=1) / n_good.clamp(min=1)
    last = positions.gather(1, (n_good - 1).clamp(min=0)[:, None])[:, 0]
    inp_all = n_good.to(torch.float64) / (last + 1).to(torch.float64)
    first = torch.where(valid, positions[:, 0], first)
    ap = torch.where(valid, ap_all, ap)
    inp = torch.where(valid, inp_all, inp)
    return first, ap, inp
