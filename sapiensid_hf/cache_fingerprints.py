"""What a cache on disk was made from, so a stale one is never silently reused: the rows of a dataset and
the processor's keypoint rules. Shared by the training caches (keypoints, images, teacher) and the
development checks' cut keypoints (evaluation/cut_keypoint_cache.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any


def dataset_fingerprint(paths: Sequence[str]) -> dict[str, Any]:
    """Identifies a dataset's rows: their count and a hash of their paths in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
    return {"num_rows": len(paths), "paths_sha256": digest.hexdigest()}


def keypoint_rules_of(processor: Any) -> dict[str, Any]:
    """The rules that decide a processor's keypoints (JSON-normalised, so a reloaded record compares equal)."""
    rules = getattr(processor, "keypoint_rules", None)
    if rules is None:
        rules = {"processor": type(processor).__qualname__}
    return json.loads(json.dumps(rules, sort_keys=True))


__all__ = ["dataset_fingerprint", "keypoint_rules_of"]
