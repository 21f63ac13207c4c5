"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), following torchreid's `utils/rerank.py`.

Same steps and parameters (k1=20, k2=6, lambda=0.3) as the reference; the per-item Python loops are
replaced by batched tensor operations. Results equal the reference up to float32 summation order
(differences around 1e-7). Neighbour lists use the stable tie policy (distance, then index); the
reference's `np.argsort` is unstable under exact ties.

Memory: the algorithm works on (num_query + num_gallery)^2 float32 matrices, about 1.5 GB each at
Market-1501 size; `rerank_embeddings` (what `sapiensid evaluate --rerank` runs) refuses a set whose
matrices would not fit in the memory this machine has free, instead of being killed part-way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._validation import as_numpy
from .distance import distance_matrix, l2_normalize
from .search import stable_topk_smallest

_ROWS_PER_BLOCK = 1024
# The reference's parameters (torchreid, Zhong et al.): what `rerank_embeddings` uses unless told otherwise.
DEFAULT_RERANK = {"k1": 20, "k2": 6, "lambda_value": 0.3}
# Working memory per (query + gallery)^2 entry: at most the float32 distances, the bool expansion and the
# float32 weights at once (then the weights and their query expansion), plus blocks of rows. Measured peak
# resident memory (benchmarks/bench_rerank.py): 14.2 bytes on Con-ReID's 212 queries + 5,337 gallery photos,
# 12.2 on twice that gallery (the blocks' share falls as the set grows; 27.7 before the matrices were freed
# as they were used up); planned with a margin, so a set just under the free memory is not killed part-way.
RERANK_BYTES_PER_ENTRY = 16


class RerankMemoryError(ValueError):
    """The re-ranking matrices of a query and gallery would not fit in the free memory (a ValueError: the
    command line reports it as a message, like any input it cannot score)."""


def rerank_memory_bytes(num_query: int, num_gallery: int) -> int:
    """About how much memory `rerank_embeddings` needs for `num_query` + `num_gallery` embeddings."""
    return RERANK_BYTES_PER_ENTRY * (num_query + num_gallery) ** 2


MEMINFO = Path("/proc/meminfo")
# A container's memory limit and use (cgroup v2, then v1): MemAvailable there is the host's, not the container's.
CGROUP_LIMITS = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")),
)


def available_memory_bytes() -> int | None:
    """Memory this process can be given now: Linux's MemAvailable, or less when a container's memory limit
    leaves less; None where neither can be read."""
    free = []
    try:
        for line in MEMINFO.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                free.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    for limit_file, usage_file in CGROUP_LIMITS:
        try:
            limit = limit_file.read_text(encoding="ascii").strip()
            if limit != "max":  # cgroup v1 writes a huge number for "no limit": it never binds below
                free.append(max(int(limit) - int(usage_file.read_text(encoding="ascii").strip()), 0))
            break
        except (OSError, ValueError):
            continue
    return min(free) if free else None


def check_rerank_memory(num_query: int, num_gallery: int) -> None:
    """Raise `RerankMemoryError` when re-ranking this many embeddings would not fit in free memory."""
    needed, free = rerank_memory_bytes(num_query, num_gallery), available_memory_bytes()
    if free is not None and needed > free:
        raise RerankMemoryError(
            f"re-ranking {num_query} queries and {num_gallery} gallery images needs about {needed / 2**30:.1f} GiB "
            f"(({num_query} + {num_gallery})^2 entries of its working matrices) and {free / 2**30:.1f} GiB is "
            "free: score without --rerank, or on a machine with more memory"
        )


def rerank_embeddings(
    query: Any,
    gallery: Any,
    k1: int = DEFAULT_RERANK["k1"],
    k2: int = DEFAULT_RERANK["k2"],
    lambda_value: float = DEFAULT_RERANK["lambda_value"],
) -> np.ndarray:
    """Re-ranked (num_query, num_gallery) distances of query and gallery embeddings: `k_reciprocal_rerank`
    on torchreid's distance, the squared L2 distance of the L2-normalised embeddings (a ranking by cosine
    gives the same order). Raises `RerankMemoryError` when the matrices would not fit in free memory."""
    q, g = l2_normalize(as_numpy(query, "query")), l2_normalize(as_numpy(gallery, "gallery"))
    check_rerank_memory(len(q), len(g))
    _check_neighbourhoods(k1, k2)

    def original_distances() -> np.ndarray:
        # The distances of queries and gallery together, made straight into the one (N, N) array re-ranking
        # works on: no separate query-gallery, query-query and gallery-gallery matrices beside it.
        together = torch.cat([q, g])
        full = distance_matrix(together, together, "euclidean").numpy()
        return _normalised_transposed(np.square(full, out=full))

    return _rerank(original_distances, len(q), k1, k2, lambda_value)


def k_reciprocal_rerank(
    query_gallery_dist: Any,
    query_query_dist: Any,
    gallery_gallery_dist: Any,
    k1: int = DEFAULT_RERANK["k1"],
    k2: int = DEFAULT_RERANK["k2"],
    lambda_value: float = DEFAULT_RERANK["lambda_value"],
) -> np.ndarray:
    """Re-ranked (num_query, num_gallery) distance matrix (float32)."""
    q_g = as_numpy(query_gallery_dist, "query_gallery_dist")
    q_q = as_numpy(query_query_dist, "query_query_dist")
    g_g = as_numpy(gallery_gallery_dist, "gallery_gallery_dist")
    num_query, num_gallery = q_g.shape
    if q_q.shape != (num_query, num_query) or g_g.shape != (num_gallery, num_gallery):
        raise ValueError(
            f"shapes do not fit: query_gallery {q_g.shape}, query_query {q_q.shape}, gallery_gallery {g_g.shape}"
        )
    _check_neighbourhoods(k1, k2)
    return _rerank(lambda: _original_distances(q_q, q_g, g_g), num_query, k1, k2, lambda_value)


def _check_neighbourhoods(k1: int, k2: int) -> None:
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")


def _rerank(original_distances: Callable[[], np.ndarray], num_query: int, k1: int, k2: int, lambda_value: float) -> np.ndarray:
    """The re-ranking of the reference's `original_dist` (queries first), made here by `original_distances`
    so that nothing else holds it and it can go once used up."""
    dist = torch.from_numpy(original_distances())
    _, neighbours = _nearest(dist, max(k1 + 1, k2))
    expansion = _k_reciprocal_expansion(neighbours, k1)
    weights = _encode(dist, expansion)
    query_gallery = dist[:num_query, num_query:].clone()
    # Each (N, N) matrix goes as soon as it is used up: at most three of them (one of bools) at a time.
    del dist, expansion
    if k2 != 1:
        weights = _query_expansion(weights, neighbours[:, :k2])
    jaccard = _jaccard_distance(weights[:num_query], weights[num_query:])
    final = jaccard * (1 - lambda_value) + query_gallery * lambda_value
    return final.numpy()


def _original_distances(q_q: np.ndarray, q_g: np.ndarray, g_g: np.ndarray) -> np.ndarray:
    """The reference's `original_dist`: the squared distances of queries and gallery together (float32),
    column-normalised, then transposed; built in one (N, N) array (the reference makes four)."""
    num_query, total = len(q_q), len(q_q) + len(g_g)
    full = np.empty((total, total), dtype=np.float32)
    # Squared in the inputs' precision, then stored as float32, as the reference's `np.power(...).astype`.
    full[:num_query, :num_query] = np.square(q_q)
    full[:num_query, num_query:] = np.square(q_g)
    full[num_query:, :num_query] = np.square(q_g).T
    full[num_query:, num_query:] = np.square(g_g)
    return _normalised_transposed(full)


def _normalised_transposed(full: np.ndarray) -> np.ndarray:
    """`full` (squared distances, float32) divided by each column's largest value, then transposed, in place."""
    full /= np.max(full, axis=0)
    _transpose_in_place(full)
    return full


def _transpose_in_place(square: np.ndarray) -> None:
    """Transpose a square array tile by tile: one tile of extra memory instead of a second array."""
    side = square.shape[0]
    for start in range(0, side, _ROWS_PER_BLOCK):
        rows = slice(start, start + _ROWS_PER_BLOCK)
        square[rows, rows] = square[rows, rows].T.copy()
        for other in range(start + _ROWS_PER_BLOCK, side, _ROWS_PER_BLOCK):
            columns = slice(other, other + _ROWS_PER_BLOCK)
            upper = square[rows, columns].copy()
            square[rows, columns] = square[columns, rows].T
            square[columns, rows] = upper.T


def _nearest(dist: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, columns = [], []
    for start in range(0, dist.shape[0], _ROWS_PER_BLOCK):
        v, c = stable_topk_smallest(dist[start : start + _ROWS_PER_BLOCK], k)
        values.append(v)
        columns.append(c)
    return torch.cat(values), torch.cat(columns)


def _reciprocal(neighbours: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each item's k-nearest list (first k + 1 entries, itself usually first) and which of them are
    reciprocal (have the item in their own list)."""
    forward = neighbours[:, : k + 1]
    own = torch.arange(forward.shape[0])[:, None, None]
    return forward, (forward[forward] == own).any(dim=-1)


def _k_reciprocal_expansion(neighbours: torch.Tensor, k1: int) -> torch.Tensor:
    """(N, N) bool: the expanded k-reciprocal set of every item."""
    total = neighbours.shape[0]
    forward, reciprocal = _reciprocal(neighbours, k1)
    half, half_reciprocal = _reciprocal(neighbours, int(np.around(k1 / 2.0)))
    expansion = torch.zeros(total, total, dtype=torch.bool)
    rows = torch.arange(total)[:, None]
    expansion[rows.expand_as(forward)[reciprocal], forward[reciprocal]] = True
    for start in range(0, total, _ROWS_PER_BLOCK):
        block = slice(start, start + _ROWS_PER_BLOCK)
        candidate = forward[block]  # (B, k1+1)
        candidate_set = half[candidate]  # (B, k1+1, k/2+1)
        candidate_valid = half_reciprocal[candidate]
        # |candidate's half set & item's k-reciprocal set| > 2/3 |candidate's half set|
        inside = (candidate_set[..., None] == forward[block][:, None, None, :]) & reciprocal[block][
            :, None, None, :
        ]
        overlap = (inside.any(dim=-1) & candidate_valid).sum(dim=-1)
        accept = reciprocal[block] & (overlap > 2.0 / 3 * candidate_valid.sum(dim=-1))
        take = accept[..., None] & candidate_valid
        row_ids = torch.arange(start, start + candidate.shape[0])[:, None, None].expand_as(candidate_set)
        expansion[row_ids[take], candidate_set[take]] = True
    return expansion


def _encode(dist: torch.Tensor, expansion: torch.Tensor) -> torch.Tensor:
    """V: Gaussian-kernel weights over each expanded set, each row summing to 1 (a block of rows at a time:
    no (N, N) temporaries)."""
    weights = torch.empty_like(dist)
    for start in range(0, dist.shape[0], _ROWS_PER_BLOCK):
        rows = slice(start, start + _ROWS_PER_BLOCK)
        block = torch.where(expansion[rows], torch.exp(-dist[rows]), torch.zeros((), dtype=dist.dtype))
        weights[rows] = block / block.sum(dim=1, keepdim=True)
    return weights


def _query_expansion(weights: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    expanded = torch.empty_like(weights)
    for start in range(0, weights.shape[0], _ROWS_PER_BLOCK):
        expanded[start : start + _ROWS_PER_BLOCK] = weights[nearest[start : start + _ROWS_PER_BLOCK]].mean(
            dim=1
        )
    return expanded


def _jaccard_distance(query_weights: torch.Tensor, gallery_weights: torch.Tensor) -> torch.Tensor:
    """1 - |A & B| / |A | B| with fuzzy sets, |A & B| = sum_k min(A_k, B_k) over the query's support."""
    result = torch.empty(query_weights.shape[0], gallery_weights.shape[0], dtype=query_weights.dtype)
    for q in range(query_weights.shape[0]):
        support = query_weights[q].nonzero(as_tuple=True)[0]
        shared = torch.minimum(query_weights[q, support][None, :], gallery_weights[:, support]).sum(dim=1)
        result[q] = 1 - shared / (2.0 - shared)
    return result
