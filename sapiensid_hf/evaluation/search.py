"""Top-k gallery search for galleries too large for a dense query x gallery distance matrix.

Two exact (brute-force) backends:
- `torch`: queries and gallery processed in blocks; only the running k best per query are kept. Ties
  follow the ranking tie policy: by (distance, gallery index), so the result equals the first k columns
  of a stable argsort of the full distance matrix.
- `faiss`: `IndexFlatIP` / `IndexFlatL2` when the `faiss` package is importable. Same neighbours up to
  float32 rounding in the distances; the order of exactly tied items is faiss's own.
`backend="auto"` picks faiss when it is importable.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from .distance import DISTANCE_METRICS, _as_tensor, l2_normalize

SEARCH_BACKENDS = ("auto", "torch", "faiss")


def faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def stable_topk_smallest(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest entries of each row ordered by (value, column), exactly as the first k columns of
    `torch.sort(values, stable=True)`, without sorting whole rows. Returns (values, columns)."""
    rows, width = values.shape
    k = min(k, width)
    if k == 0:
        return values[:, :0], torch.zeros(rows, 0, dtype=torch.int64)
    kth = torch.topk(values, k, dim=1, largest=False, sorted=True).values[:, -1:]
    below = values < kth
    # Of the entries equal to the k-th value, keep the lowest columns, as many as still needed.
    tied = values == kth
    needed = k - below.sum(dim=1, keepdim=True)
    chosen = below | (tied & (tied.cumsum(dim=1) <= needed))
    columns = chosen.nonzero(as_tuple=True)[1].view(rows, k)  # ascending column order per row
    picked = values.gather(1, columns)
    picked, order = torch.sort(picked, dim=1, stable=True)
    return picked, columns.gather(1, order)


def topk_search(
    query: Any,
    gallery: Any,
    k: int,
    metric: str = "cosine",
    backend: str = "auto",
    query_block: int = 1024,
    gallery_block: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest gallery items of every query: `(distances, indices)`, each (num_query, k).

    Distances are those of `distance.distance_matrix` (`cosine`: negative cosine similarity,
    `euclidean`: squared L2), ascending. k is capped at the gallery size.
    """
    if metric not in DISTANCE_METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; expected one of {DISTANCE_METRICS}")
    if backend not in SEARCH_BACKENDS:
        raise ValueError(f"unknown search backend {backend!r}; expected one of {SEARCH_BACKENDS}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q = _as_tensor(query, "query")
    g = _as_tensor(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} != gallery dim {g.shape[1]}")
    k = min(k, g.shape[0])
    if backend == "faiss" and not faiss_available():
        raise ImportError("backend='faiss' needs the faiss package (pip install faiss-cpu)")
    if backend == "faiss" or (backend == "auto" and faiss_available()):
        return _faiss_search(q, g, k, metric)
    return _torch_search(q, g, k, metric, query_block, gallery_block)


def _torch_search(
    q: torch.Tensor, g: torch.Tensor, k: int, metric: str, query_block: int, gallery_block: int
) -> tuple[np.ndarray, np.ndarray]:
    if metric == "cosine":
        q, g = l2_normalize(q), l2_normalize(g)
    dtype = torch.promote_types(q.dtype, g.dtype)
    best_dist = torch.empty(q.shape[0], k, dtype=dtype)
    best_index = torch.empty(q.shape[0], k, dtype=torch.int64)
    for q_start in range(0, q.shape[0], query_block):
        block = q[q_start : q_start + query_block]
        block_sq = (block * block).sum(dim=1, keepdim=True)
        kept_dist = torch.empty(block.shape[0], 0, dtype=dtype)
        kept_index = torch.empty(block.shape[0], 0, dtype=torch.int64)
        for g_start in range(0, g.shape[0], gallery_block):
            part = g[g_start : g_start + gallery_block]
            similarity = block @ part.T
            if metric == "cosine":
                dist = -similarity
            else:
                dist = block_sq + (part * part).sum(dim=1)[None, :] - 2 * similarity
            part_dist, part_cols = stable_topk_smallest(dist, k)
            # Earlier gallery blocks hold lower indices: putting them first keeps a stable sort
            # ordered by (distance, index).
            merged_dist = torch.cat([kept_dist, part_dist], dim=1)
            merged_index = torch.cat([kept_index, part_cols + g_start], dim=1)
            merged_dist, order = torch.sort(merged_dist, dim=1, stable=True)
            kept_dist, kept_index = merged_dist[:, :k], merged_index.gather(1, order[:, :k])
        best_dist[q_start : q_start + query_block] = kept_dist
        best_index[q_start : q_start + query_block] = kept_index
    return best_dist.numpy(), best_index.numpy()


def _faiss_search(q: torch.Tensor, g: torch.Tensor, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    if metric == "cosine":
        q, g = l2_normalize(q), l2_normalize(g)
    queries = np.ascontiguousarray(q.numpy(), dtype=np.float32)
    items = np.ascontiguousarray(g.numpy(), dtype=np.float32)
    index = faiss.IndexFlatIP(items.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(items.shape[1])
    index.add(items)
    distances, indices = index.search(queries, k)
    if metric == "cosine":
        distances = -distances  # inner-product similarity -> the negative-cosine distance used here
    return distances, indices.astype(np.int64)
