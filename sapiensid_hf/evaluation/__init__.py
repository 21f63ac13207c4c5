"""Evaluation metrics under the published protocols, as plain vectorised functions.

Re-identification ranking (`evaluate_ranking`, CUHK03 and PRCC single-shot variants), face verification
(`verification_accuracy`, `tar_at_far`), k-reciprocal re-ranking, exact top-k search and bootstrap
intervals over people or pairs (`people_interval`, `pairs_interval`). The same
metrics are `evaluate` modules under `sapiensid_hf/evaluation/metrics/<name>/` (see `metric_path`).
"""

from pathlib import Path

from .cuhk03 import evaluate_cuhk03_single_gallery_shot
from .distance import aggregate_by_group, distance_matrix, fuse_flip, l2_normalize
from .intervals import pairs_interval, people_interval
from .ranking import RankingResult, evaluate_ranking
from .reid_protocols import RANKING_PROTOCOLS, NoValidQueryError
from .rerank import k_reciprocal_rerank
from .roc import DEFAULT_FARS, roc_curve, tar_at_far
from .search import faiss_available, stable_topk_smallest, topk_search
from .single_shot import SingleShotResult, evaluate_single_shot, single_shot_gallery_draws
from .verification import VerificationResult, kfold_indices, verification_accuracy

EVALUATE_MODULES = ("reid_ranking", "cc_reid_ranking", "face_verification", "tar_at_far")


def metric_path(name: str) -> str:
    """Folder of a local `evaluate` module, for `evaluate.load(metric_path("reid_ranking"))`."""
    if name not in EVALUATE_MODULES:
        raise ValueError(f"unknown metric {name!r}; expected one of {EVALUATE_MODULES}")
    return str(Path(__file__).resolve().parent / "metrics" / name)


__all__ = [
    "DEFAULT_FARS",
    "EVALUATE_MODULES",
    "RANKING_PROTOCOLS",
    "NoValidQueryError",
    "RankingResult",
    "SingleShotResult",
    "VerificationResult",
    "aggregate_by_group",
    "distance_matrix",
    "evaluate_cuhk03_single_gallery_shot",
    "evaluate_ranking",
    "evaluate_single_shot",
    "faiss_available",
    "fuse_flip",
    "k_reciprocal_rerank",
    "kfold_indices",
    "l2_normalize",
    "metric_path",
    "pairs_interval",
    "people_interval",
    "roc_curve",
    "single_shot_gallery_draws",
    "stable_topk_smallest",
    "tar_at_far",
    "topk_search",
    "verification_accuracy",
]
