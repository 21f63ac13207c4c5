"""PRCC single-shot evaluation: one gallery image per identity, drawn 10 times with a fixed seed.

PRCC (Yang et al., TPAMI 2019) reports single-shot numbers: the gallery keeps ONE randomly chosen image
per identity, the ranking metrics are computed on that gallery, and the draw is repeated 10 times and
averaged. The draws here are exactly those of the CAL / official SapiensID PRCC loaders
(`gallery_idx`): `random.seed(3)`, then for each of the 10 draws and each identity in the order it first
appears in the gallery list, `random.choice(that identity's gallery indices)`. Given the gallery in the
same order, the chosen indices are identical.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import checked_distance_matrix, id_vector
from .ranking import RankingResult, evaluate_ranking


@dataclass(frozen=True)
class SingleShotResult:
    """Mean CMC / mAP / mINP over the draws, plus each draw's own result."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    draws: tuple[RankingResult, ...]

    def to_dict(self, ranks: tuple[int, ...] = (1, 5, 10, 20)) -> dict[str, float]:
        summary = {f"rank{r}": float(self.cmc[min(r, len(self.cmc)) - 1]) for r in ranks}
        summary.update(mAP=self.mAP, mINP=self.mINP, num_draws=len(self.draws))
        return summary


def single_shot_gallery_draws(gallery_pids: Any, num_draws: int = 10, seed: int = 3) -> np.ndarray:
    """(num_draws, num_identities) gallery indices, one per identity per draw, as CAL's `gallery_idx`."""
    pids = id_vector(gallery_pids, "gallery_pids")
    if pids.size == 0:
        raise ValueError("gallery_pids is empty: nothing to draw from")
    members: dict[int, list[int]] = {}
    for index, pid in enumerate(pids.tolist()):
        members.setdefault(pid, []).append(index)
    rng = random.Random(seed)
    return np.array(
        [[rng.choice(indices) for indices in members.values()] for _ in range(num_draws)], dtype=np.int64
    )


def evaluate_single_shot(
    distmat: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_camids: Any,
    gallery_camids: Any,
    query_clothes_ids: Any = None,
    gallery_clothes_ids: Any = None,
    protocol: str = "market1501",
    max_rank: int | None = 50,
    num_draws: int = 10,
    seed: int = 3,
    draws: np.ndarray | None = None,
) -> SingleShotResult:
    """Average of `evaluate_ranking` over single-shot galleries.

    `draws` (num_draws, n) gallery indices override `num_draws` / `seed`; by default they are
    `single_shot_gallery_draws(gallery_pids, num_draws, seed)`.
    """
    distmat = checked_distance_matrix(distmat)
    g_pids = id_vector(gallery_pids, "gallery_pids", distmat.shape[1])
    if draws is None:
        draws = single_shot_gallery_draws(g_pids, num_draws, seed)
    draws = np.asarray(draws, dtype=np.int64)
    if draws.ndim != 2 or draws.size == 0:
        raise ValueError(f"draws must be a non-empty (num_draws, n) index array, got shape {draws.shape}")
    if draws.min() < 0 or draws.max() >= len(g_pids):
        raise ValueError(f"draws index outside the gallery of {len(g_pids)} images")
    g_cams = np.asarray(gallery_camids)
    g_clothes = None if gallery_clothes_ids is None else np.asarray(gallery_clothes_ids)
    results = tuple(
        evaluate_ranking(
            distmat[:, subset],
            query_pids,
            g_pids[subset],
            query_camids,
            g_cams[subset],
            query_clothes_ids,
            None if g_clothes is None else g_clothes[subset],
            protocol=protocol,
            max_rank=max_rank,
        )
        for subset in draws
    )
    return SingleShotResult(
        cmc=np.mean([r.cmc for r in results], axis=0),
        mAP=float(np.mean([r.mAP for r in results])),
        mINP=float(np.mean([r.mINP for r in results])),
        draws=results,
    )
