"""Query x gallery distance matrix: `sapiensid_hf.evaluation.distance_matrix` against torchreid's
`compute_distance_matrix` formulation, on the same Market-1501-size input in one process.

torchreid (`metrics/distance.py`): euclidean = `|q|^2.expand + |g|^2.expand.t()` then `addmm_`;
cosine = `1 - normalize(q) @ normalize(g).T`. Ours writes each query block with one `mm` / `addmm`
into the output (cosine without the constant 1, which changes no ranking). The script checks the
numbers agree to float32 rounding before it reports a time. Every implementation runs `--rounds`
times, interleaved, and the median counts.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from markdown_report import publish_section

from sapiensid_hf.evaluation.distance import distance_matrix

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Distance matrix"


def torchreid_distance(query: torch.Tensor, gallery: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "cosine":
        normed_query = torch.nn.functional.normalize(query, p=2, dim=1)
        normed_gallery = torch.nn.functional.normalize(gallery, p=2, dim=1)
        return 1 - torch.mm(normed_query, normed_gallery.t())
    m, n = query.size(0), gallery.size(0)
    distmat = torch.pow(query, 2).sum(dim=1, keepdim=True).expand(m, n) + torch.pow(gallery, 2).sum(
        dim=1, keepdim=True
    ).expand(n, m).t()
    return distmat.addmm_(query, gallery.t(), beta=1, alpha=-2)


def timed(function, *args) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-query", type=int, default=3368)
    parser.add_argument("--num-gallery", type=int, default=19732)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args()

    rows = []
    for dim in args.dims:
        generator = torch.Generator().manual_seed(args.seed)
        query = torch.randn(args.num_query, dim, generator=generator)
        gallery = torch.randn(args.num_gallery, dim, generator=generator)
        for metric in ("euclidean", "cosine"):
            times: dict[str, list[float]] = {"torchreid": [], "ours": []}
            for _ in range(args.rounds):
                reference_s, reference = timed(torchreid_distance, query, gallery, metric)
                ours_s, ours = timed(distance_matrix, query, gallery, metric)
                times["torchreid"].append(reference_s)
                times["ours"].append(ours_s)
                offset = 1.0 if metric == "cosine" else 0.0
                # float32 rounding of sums over `dim` terms of magnitude |q||g|.
                scale = float(reference.abs().max()) if metric == "euclidean" else 1.0
                worst = float((ours + offset - reference).abs().max())
                if worst > 1e-5 * scale:
                    raise SystemExit(f"{metric} dim {dim}: values differ by {worst:.3g} (scale {scale:.3g})")
                del reference, ours
            reference_s, ours_s = statistics.median(times["torchreid"]), statistics.median(times["ours"])
            rows.append((dim, metric, reference_s, ours_s, worst / scale))

    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_distance.py` — {args.num_query} queries x {args.num_gallery} gallery "
        f"(Market-1501 size), random float32 features (seed {args.seed}), median of {args.rounds} interleaved "
        "rounds in one process. Baseline: torchreid's `compute_distance_matrix` formulation (expand + add + "
        "`addmm_`; `1 - normalize @ normalize.T`), written out in the script; ours is "
        "`sapiensid_hf.evaluation.distance_matrix` (query blocks of 4096 rows, one `mm` / `addmm` per block "
        "written into the output, cosine without the constant 1).",
        "",
        "| dim | metric | torchreid (s) | ours (s) | speed, ours vs torchreid (>1 = faster) | max difference (relative) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for dim, metric, reference_s, ours_s, difference in rows:
        lines.append(
            f"| {dim} | {metric} | {reference_s:.3f} | {ours_s:.3f} | **{reference_s / ours_s:.2f}x** "
            f"| {difference:.1e} |"
        )
    lines += [
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; compare the ratios, not the seconds.",
    ]
    publish_section(lines, SECTION, None if args.no_write else DOC)


if __name__ == "__main__":
    main()
