"""The keypoints of the development photos' centre cuts, kept between runs beside the photos' own.

A model folder with an embedding rule of centre cuts (sapiensid_hf/cut_views.py) runs the detector on each
cut of each photo: two detections more a photo, most of a public-dev run's time. What they find depends
only on the photo, its keypoints (detected, or the standing-person prior), the cut scales and the
processor's keypoint rules, never on the model's weights, so `evaluate`, `calibrate` and every checkpoint
of a training run share them. One file a set and rule, in the set's keypoint cache folder:

    cut_keypoints_<scales>.npz   cut_keypoints (N, cuts, 19, 2) float32, and meta (JSON): what they were made from

A file made from anything else (other rows, other photo keypoints, other rules) is not used: the cuts are
detected again and the file replaced (atomically: a killed write leaves the previous file whole).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic_files import save_npz_atomically
from ..cache_fingerprints import dataset_fingerprint, keypoint_rules_of

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def cut_keypoints_file(set_folder: str | os.PathLike, cut_scales: Sequence[float]) -> Path:
    """The file of one set's cut keypoints under the rule `cut_scales` (the photo itself, 1.0, first)."""
    shares = "_".join(f"{scale:g}" for scale in cut_scales[1:])
    return Path(set_folder) / f"cut_keypoints_{shares}.npz"


def cut_keypoints_record(paths: Sequence[str], keypoints: np.ndarray, cut_scales: Sequence[float], processor: Any) -> dict[str, Any]:
    """What a set's cut keypoints are made from: its rows, the photos' keypoints, the scales, the keypoint rules."""
    photo_keypoints = np.ascontiguousarray(keypoints, dtype=np.float32)
    return json.loads(json.dumps({
        "version": CACHE_VERSION,
        "dataset": dataset_fingerprint(paths),
        "photo_keypoints_sha256": hashlib.sha256(photo_keypoints.tobytes()).hexdigest(),
        "cut_scales": [float(scale) for scale in cut_scales],
        "keypoint_rules": keypoint_rules_of(processor),
    }, sort_keys=True))  # fmt: skip


def load_cut_keypoints(path: str | os.PathLike, record: dict[str, Any]) -> np.ndarray | None:
    """The cached (N, cuts, 19, 2) cut keypoints at `path` when they were made from `record`; else None
    (no file, another record, or a file that cannot be read: the cuts are detected again)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            made_from = json.loads(str(stored["meta"]))
            cut_keypoints = stored["cut_keypoints"]
    except (OSError, ValueError, KeyError) as error:
        logger.warning("cut keypoint cache %s cannot be read (%s): detecting the cuts again", path, error)
        return None
    if made_from != record or cut_keypoints.shape != _shape_of(record):
        logger.warning("cut keypoint cache %s was made from other photos, keypoints or rules: detecting the cuts again", path)
        return None
    return cut_keypoints


def save_cut_keypoints(path: str | os.PathLike, record: dict[str, Any], cut_keypoints: np.ndarray) -> Path:
    """Write the cut keypoints and their record (atomically)."""
    expected = _shape_of(record)
    if cut_keypoints.shape != expected:
        raise ValueError(f"cut keypoints of shape {cut_keypoints.shape}, expected {expected}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_npz_atomically(path, cut_keypoints=cut_keypoints.astype(np.float32), meta=np.array(json.dumps(record, sort_keys=True)))


def _shape_of(record: dict[str, Any]) -> tuple[int, ...]:
    """(rows, cuts, 19, 2): the shape of the cut keypoints `record` describes (the photo itself is no cut)."""
    return (record["dataset"]["num_rows"], len(record["cut_scales"]) - 1, 19, 2)


__all__ = ["cut_keypoints_file", "cut_keypoints_record", "load_cut_keypoints", "save_cut_keypoints"]
