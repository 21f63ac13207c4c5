"""Input checks shared by the metric functions: clear errors instead of bare asserts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_numpy(array: Any, name: str) -> np.ndarray:
    """Return `array` (numpy, torch or a sequence) as a numpy array."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    try:
        return np.asarray(array)
    except Exception as error:  # pragma: no cover - numpy raises many types here
        raise TypeError(f"{name} must be array-like, got {type(array).__name__}: {error}") from error


def id_vector(values: Any, name: str, length: int | None = None) -> np.ndarray:
    """A 1-D integer id vector (pids, camids, clothes ids), checked for shape."""
    array = as_numpy(values, name)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} entries but {length} were expected")
    if array.dtype.kind not in "iub":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer ids, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def checked_distance_matrix(distmat: Any, name: str = "distmat") -> np.ndarray:
    """A 2-D float distance matrix with no NaN (a NaN has no place in a ranking)."""
    array = as_numpy(distmat, name)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_query, num_gallery), got shape {array.shape}")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    if np.isnan(array).any():
        rows = np.unique(np.nonzero(np.isnan(array))[0])
        raise ValueError(f"{name} contains NaN in {rows.size} query row(s), first: {rows[:5].tolist()}")
    return array


def checked_ranking_inputs(
    distmat: Any, query_pids: Any, gallery_pids: Any, query_camids: Any, gallery_camids: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(distmat, query_pids, gallery_pids, query_camids, gallery_camids)` checked against each other:
    the distance matrix as `checked_distance_matrix`, the ids as `id_vector` of the matching length."""
    dist = checked_distance_matrix(distmat)
    num_query, num_gallery = dist.shape
    return (
        dist,
        id_vector(query_pids, "query_pids", num_query),
        id_vector(gallery_pids, "gallery_pids", num_gallery),
        id_vector(query_camids, "query_camids", num_query),
        id_vector(gallery_camids, "gallery_camids", num_gallery),
    )
