"""What torchreid's per-query reference loops (`eval_market1501`, `eval_cuhk03`) share, for the test oracles
in test_eval_ranking.py and test_eval_single_shot.py."""

from collections.abc import Iterator

import numpy as np


def torchreid_valid_queries(
    distmat, q_pids, g_pids, q_camids, g_camids, sort_kind: str
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`(order, keep, raw_cmc)` for each query with a true match, as torchreid's loops see it: the gallery
    ranked by `np.argsort(kind=sort_kind)`, the mask of ranked items kept (same pid and same camid removed),
    and the 0/1 true-match flags of the kept items in ranked order."""
    indices = np.argsort(distmat, axis=1, kind=sort_kind)
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    for q in range(distmat.shape[0]):
        order = indices[q]
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw_cmc = matches[q][keep]
        if np.any(raw_cmc):
            yield order, keep, raw_cmc


def torchreid_average_precision(raw_cmc: np.ndarray) -> float:
    """AP of one query from its 0/1 true-match flags in ranked order, as torchreid computes it."""
    precision_at_hits = np.asarray([x / (i + 1.0) for i, x in enumerate(raw_cmc.cumsum())]) * raw_cmc
    return precision_at_hits.sum() / raw_cmc.sum()
