"""Embedding post-processing and query x gallery distance matrices, as the reference evaluations do it.

- `fuse_flip`: embedding of an image plus embedding of its mirror image, L2-normalised (official
  SapiensID evaluators, CAL `extract_img_feature`, insightface `verification.test`).
- `aggregate_by_group`: mean embedding per group (e.g. a video tracklet) then L2-normalised (CAL
  `extract_vid_feature`, the official CCVID video evaluator).
- `cosine_distance_matrix`: `-(q @ g.T)` of L2-normalised embeddings, the exact distance CAL and the
  official evaluators rank by (so rankings, ties included, match theirs).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

DISTANCE_METRICS = ("cosine", "euclidean")


def _as_tensor(array: Any, name: str) -> torch.Tensor:
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(np.asarray(array))
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_items, dim), got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    # min and max are both finite iff every value is (NaN propagates through both); one pass with no
    # boolean copy, ~8x cheaper than isfinite().all() on gallery-size inputs.
    if tensor.numel() and not all(math.isfinite(float(bound)) for bound in torch.aminmax(tensor)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def l2_normalize(embeddings: Any, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit L2 norm (rows of zeros stay zero)."""
    tensor = _as_tensor(embeddings, "embeddings")
    return tensor / tensor.norm(dim=1, keepdim=True).clamp_min(eps)


def fuse_flip(embeddings: Any, flipped_embeddings: Any) -> torch.Tensor:
    """`normalize(embeddings + flipped_embeddings)`: flip test-time augmentation."""
    first = _as_tensor(embeddings, "embeddings")
    second = _as_tensor(flipped_embeddings, "flipped_embeddings")
    if first.shape != second.shape:
        raise ValueError(
            f"embeddings {tuple(first.shape)} and flipped_embeddings {tuple(second.shape)} differ in shape"
        )
    return l2_normalize(first + second)


def aggregate_by_group(embeddings: Any, group_ids: Any) -> tuple[torch.Tensor, np.ndarray]:
    """Mean embedding of each group, L2-normalised, and the row index where each group first occurs.

    Groups are returned in order of first occurrence, so `ids[first_rows]` gives their labels.
    """
    tensor = _as_tensor(embeddings, "embeddings")
    groups = np.asarray(group_ids)
    if groups.shape != (tensor.shape[0],):
        raise ValueError(
            f"group_ids must have one entry per embedding ({tensor.shape[0]}), got shape {groups.shape}"
        )
    _, first_rows, inverse = np.unique(groups, return_index=True, return_inverse=True)
    appearance = np.argsort(first_rows, kind="stable")
    rank_of_group = np.empty_like(appearance)
    rank_of_group[appearance] = np.arange(appearance.size)
    index = torch.from_numpy(rank_of_group[inverse.reshape(-1)])
    sums = torch.zeros(appearance.size, tensor.shape[1], dtype=tensor.dtype).index_add_(0, index, tensor)
    counts = torch.bincount(index, minlength=appearance.size).to(tensor.dtype)
    return l2_normalize(sums / counts[:, None]), first_rows[appearance]


def distance_matrix(query: Any, gallery: Any, metric: str = "cosine", block_size: int = 4096) -> torch.Tensor:
    """(num_query, num_gallery) distances, computed in query blocks written straight into the output.

    `cosine`: `-(normalize(q) @ normalize(g).T)` (torchreid's `1 - cos` less its constant 1, so
    rankings are the same); `euclidean`: squared L2, `|q|^2 + |g|^2 - 2 q.g` (torchreid's
    `euclidean_squared_distance`). Each block is one BLAS call (`mm` / `addmm` with `out=`): no
    (num_query, num_gallery) temporaries besides the result, and `block_size` query rows bound the
    only other working memory.
    """
    if metric not in DISTANCE_METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; expected one of {DISTANCE_METRICS}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    q = _as_tensor(query, "query")
    g = _as_tensor(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} != gallery dim {g.shape[1]}")
    dtype = torch.promote_types(q.dtype, g.dtype)
    q, g = q.to(dtype), g.to(dtype)
    if metric == "cosine":
        q, g = l2_normalize(q), l2_normalize(g)
    g_t = g.T
    out = torch.empty(q.shape[0], g.shape[0], dtype=dtype)
    if metric == "euclidean":
        q_sq = (q * q).sum(dim=1, keepdim=True)
        g_sq = (g * g).sum(dim=1)[None, :]
    for start in range(0, q.shape[0], block_size):
        rows = out[start : start + block_size]
        block = q[start : start + block_size]
        if metric == "cosine":
            torch.mm(block, g_t, out=rows).neg_()
        else:
            # addmm's `input` is the broadcast |q|^2 + |g|^2, written into `rows` first.
            torch.add(q_sq[start : start + block_size], g_sq, out=rows)
            rows.addmm_(block, g_t, alpha=-2)
    return out
