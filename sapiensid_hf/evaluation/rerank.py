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
# Working memory per (query + gallery)^2 entry: the float32 distances (as numpy and as a tensor), the bool
# expansion, the float32 weights, their query expansion and the temporaries. Measured 26.8-30.3 bytes of
# peak resident memory on Con-ReID's 212 queries + 5,337 gallery photos (benchmarks/bench_rerank.py, three
# runs); planned with a margin, so a set just under the free memory is not killed part-way.
RERANK_BYTES_PER_ENTRY = 36


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
    distances = [distance_matrix(a, b, "euclidean").numpy() for a, b in ((q, g), (q, q), (g, g))]
    return k_reciprocal_rerank(*distances, k1=k1, k2=k2, lambda_value=lambda_value)


def k_reciprocal_rerank(
    query_gallery_dist: Any,
    query_query_dist: Any,
    gallery_gallery_dist: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
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
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    full = np.concatenate([np.concatenate([q_q, q_g], axis=1), np.concatenate([q_g.T, g_g], axis=1)], axis=0)
    full = np.power(full, 2).astype(np.float32)
    # Column-normalised, then transposed: the reference's `original_dist`.
    dist = torch.from_numpy(np.ascontiguousarray(np.transpose(1.0 * full / np.max(full, axis=0))))

    _, neighbours = _nearest(dist, max(k1 + 1, k2))
    expansion = _k_reciprocal_expansion(neighbours, k1)
    weights = _encode(dist, expansion)
    if k2 != 1:
        weights = _query_expansion(weights, neighbours[:, :k2])
    jaccard = _jaccard_distance(weights[:num_query], weights[num_query:])
    final = jaccard * (1 - lambda_value) + dist[:num_query, num_query:] * lambda_value
    return final.numpy()


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
    """V: Gaussian-kernel weights over each expanded set, each row summing to 1."""
    weights = torch.where(expansion, torch.exp(-dist), torch.zeros((), dtype=dist.dtype))
    return weights / weights.sum(dim=1, keepdim=True)


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
