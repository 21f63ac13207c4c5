"""Ranking metrics at Market-1501 size: vectorised `evaluate_ranking` against a per-query loop.

The baseline is torchreid's Python path (`eval_market1501`, with fast-reid's mINP): a full argsort of
the distance matrix, then one query at a time. Both run in this process on the same random features
(fixed seed), the script asserts they give the same numbers, prints the speed ratio and writes it to
docs/benchmarks.md under `## Ranking metrics`.

    python benchmarks/bench_ranking.py            # about 2-4 minutes on 2 CPU cores, mostly the baseline
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from markdown_report import update_section

from sapiensid_hf.evaluation import evaluate_ranking

SECTION = "## Ranking metrics"
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def torchreid_eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """torchreid `eval_market1501` (Python path) + fast-reid's mINP, as those projects write it."""
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(distmat.shape[0]):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = matches[q_idx][np.invert(remove)]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        max_pos_idx = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[max_pos_idx] / (max_pos_idx + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
        all_ap.append(tmp_cmc.sum() / num_rel)
    all_cmc = np.asarray(all_cmc).astype(np.float32)
    return all_cmc.sum(0) / len(all_ap), np.mean(all_ap), np.mean(all_inp)


def market_sized_problem(seed: int, num_query: int, num_gallery: int, dim: int = 128):
    """Random unit features and Market-1501-like ids: 751 test identities, 6 cameras."""
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((num_query, dim))
    gallery = rng.standard_normal((num_gallery, dim))
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    distmat = -(query @ gallery.T)  # float64: exact ties are practically impossible, so any sort agrees
    return (
        distmat,
        rng.integers(1, 752, num_query),
        rng.integers(1, 752, num_gallery),
        rng.integers(0, 6, num_query),
        rng.integers(0, 6, num_gallery),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-query", type=int, default=3368)
    parser.add_argument("--num-gallery", type=int, default=19732)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args()

    problem = market_sized_problem(args.seed, args.num_query, args.num_gallery)
    start = time.perf_counter()
    ours = evaluate_ranking(*problem, max_rank=50)
    vectorised_s = time.perf_counter() - start
    start = time.perf_counter()
    cmc, m_ap, m_inp = torchreid_eval_market1501(*problem, max_rank=50)
    loop_s = time.perf_counter() - start

    np.testing.assert_allclose(ours.cmc, cmc, rtol=0, atol=1e-6)  # the loop sums CMC in float32
    np.testing.assert_allclose([ours.mAP, ours.mINP], [m_ap, m_inp], rtol=1e-12, atol=0)
    ratio = loop_s / vectorised_s
    print(f"{args.num_query} queries x {args.num_gallery} gallery, float64 distances")
    print(f"per-query loop (torchreid Python path): {loop_s:.1f} s")
    print(f"vectorised evaluate_ranking:            {vectorised_s:.2f} s")
    print(
        f"speed-up: {ratio:.1f}x   (rank-1 {ours.cmc[0]:.5f}, mAP {ours.mAP:.6f}, mINP {ours.mINP:.6f}: equal)"
    )

    if not args.no_write:
        update_section(
            DOC,
            SECTION,
            f"""{SECTION}

`python benchmarks/bench_ranking.py` — CMC / mAP / mINP under the Market-1501 rule at Market-1501 size
({args.num_query} queries x {args.num_gallery} gallery images, random unit features, seed {args.seed},
751 identities, 6 cameras, float64 distances), both in the same process:

| implementation | time | relative |
| --- | --- | --- |
| per-query loop (torchreid `eval_market1501` Python path + fast-reid mINP) | {loop_s:.1f} s | 1.0x |
| `sapiensid_hf.evaluation.evaluate_ranking` (vectorised, no full sort) | {vectorised_s:.2f} s | **{ratio:.1f}x faster** |

The script asserts identical results (CMC to float32 rounding, mAP and mINP to 1e-12 relative):
rank-1 {ours.cmc[0]:.5f}, mAP {ours.mAP:.6f}, mINP {ours.mINP:.6f}.
Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}
with {torch.get_num_threads()} threads; other jobs may share the cores, so compare the ratio, not seconds.
""",
        )
        print(f"wrote {DOC} ({SECTION})")


if __name__ == "__main__":
    main()
