"""What k-reciprocal re-ranking (`sapiensid evaluate --rerank`) does to the development rankings, and costs.

    python benchmarks/bench_rerank.py [--model DIR] [--write docs/benchmarks.md]

The ranking checks of `sapiensid evaluate --benchmark public-dev` (CUHK03-val, both camera directions;
Con-ReID query -> gallery), embedded once as that command embeds them (flip, the folder's centre cuts,
the same keypoint caches), are scored with the plain cosine ranking and after re-ranking with the
reference's settings (torchreid: k1 20, k2 6, lambda 0.3; nothing tuned here), in the same run. Also
measured: the time of each ranking and the peak memory of re-ranking per (query + gallery)^2 entry (in a
fresh process, so the embedding's own peak does not hide it), the figure `rerank.py` refuses by.
"""

from __future__ import annotations

import multiprocessing
import platform
import time
from pathlib import Path

import numpy as np
import torch
from dev_embeddings import scoring_arguments, scoring_pipeline
from markdown_report import difference_table, publish_section

from sapiensid_hf.evaluation import public_dev
from sapiensid_hf.evaluation.rerank import DEFAULT_RERANK, RERANK_BYTES_PER_ENTRY, rerank_embeddings

SECTION = "## k-reciprocal re-ranking (`evaluate --rerank`)"
PLAIN, RERANKED = "cosine ranking", "re-ranked (k1 20, k2 6, lambda 0.3)"


def embed_ranking_sets(pipeline, identities: Path, cache: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The ranking checks and their embeddings, as `sapiensid evaluate --benchmark public-dev` makes them."""
    sets = public_dev.load_dev_sets(identities, public_dev.RANKING_CHECKS)
    embedded = {}
    for name, dev in sets.items():
        keypoints = public_dev.with_crop_prior(dev, public_dev.dev_keypoints(dev, pipeline.processor, cache))
        embedded[name] = public_dev.embed_dev_set(pipeline.model, pipeline.processor, dev, keypoints, cache)
    return sets, embedded


def figures(scored: dict[str, dict]) -> dict[str, float]:
    """CUHK03-val rank-1 / mAP (mean of the two directions), Con-ReID rank-1 / mAP."""
    cuhk = scored["cuhk03_val"].values()
    return {
        "CUHK03-val rank-1": float(np.mean([part["rank1"] for part in cuhk])),
        "CUHK03-val mAP": float(np.mean([part["mAP"] for part in cuhk])),
        "Con-ReID rank-1": scored["conreid"]["query_to_gallery"]["rank1"],
        "Con-ReID mAP": scored["conreid"]["query_to_gallery"]["mAP"],
    }


def timed_scores(sets: dict, embedded: dict[str, np.ndarray], rerank: bool) -> tuple[dict[str, dict], dict[str, float]]:
    scored, seconds = {}, {}
    for name, dev in sets.items():
        start = time.perf_counter()
        scored[name] = public_dev.score_dev_set(dev, embedded[name], rerank=rerank)
        seconds[name] = time.perf_counter() - start
    return scored, seconds


def resident_peak_bytes() -> int:
    """This process's peak resident memory (Linux's VmHWM). Not `ru_maxrss`: a child started by fork and
    exec reports its parent's peak there."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _peak_bytes_per_entry(query: np.ndarray, gallery: np.ndarray, answer) -> None:
    before = resident_peak_bytes()
    rerank_embeddings(query, gallery)
    answer.put((resident_peak_bytes() - before) / (len(query) + len(gallery)) ** 2)


def peak_bytes_per_entry(query: np.ndarray, gallery: np.ndarray) -> float:
    """Peak resident memory re-ranking adds, per (query + gallery)^2 entry, measured in a fresh process."""
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    worker = context.Process(target=_peak_bytes_per_entry, args=(query, gallery, answer))
    worker.start()
    worker.join()
    if worker.exitcode != 0:
        raise RuntimeError(f"the memory measurement process failed (exit code {worker.exitcode})")
    return answer.get(timeout=10)


def main() -> None:
    args = scoring_arguments(__doc__)

    pipeline = scoring_pipeline(args.model)
    sets, embedded = embed_ranking_sets(pipeline, args.identities, args.keypoint_cache)
    plain, plain_seconds = timed_scores(sets, embedded, rerank=False)
    reranked, reranked_seconds = timed_scores(sets, embedded, rerank=True)
    roles = np.asarray(sets["conreid"].dataset["role"])
    conreid = embedded["conreid"]
    memory = peak_bytes_per_entry(conreid[roles == "query"], conreid[roles == "gallery"])
    sizes = {
        name: f"{part['num_queries']:,} queries x {part['num_gallery']:,} gallery"
        for name, scored in plain.items()
        for part in list(scored.values())[:1]
    }
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_rerank.py` with {Path(args.model).name} ({platform.machine()}, {torch.get_num_threads()} "
        "torch threads): the ranking checks of `sapiensid evaluate --benchmark public-dev` (flip, the folder's centre "
        f"cuts; CUHK03-val {sizes['cuhk03_val']} photos a direction, Con-ReID {sizes['conreid']}), the same embeddings "
        f"ranked by cosine and re-ranked with the reference's settings (k1 {DEFAULT_RERANK['k1']}, k2 {DEFAULT_RERANK['k2']}, lambda {DEFAULT_RERANK['lambda_value']}; not tuned), in %; the "
        "difference to the cosine ranking in brackets.",
        "",
        *difference_table("ranking", {PLAIN: figures(plain), RERANKED: figures(reranked)}, PLAIN),
        "",
        "| set | cosine ranking (s) | re-ranked (s) | ratio |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {name} | {plain_seconds[name]:.2f} | {reranked_seconds[name]:.2f} | {reranked_seconds[name] / plain_seconds[name]:.1f}x |"
            for name in sets
        ),
        "",
        f"Peak memory of re-ranking Con-ReID: {memory:.1f} bytes per (query + gallery)^2 entry, measured in a fresh "
        f"process (`rerank.py` plans with {RERANK_BYTES_PER_ENTRY} and refuses a set that would not fit in free memory: "
        f"Market-1501's 3,368 + 15,913 photos need about {RERANK_BYTES_PER_ENTRY * 19281**2 / 2**30:.1f} GiB, MSMT17's "
        f"11,659 + 82,161 about {RERANK_BYTES_PER_ENTRY * 93820**2 / 2**30:.0f} GiB). The plain figures stay what a "
        "model is judged, calibrated and shipped on; re-ranking needs the whole gallery at once, so `search` and "
        "`index` do not use it.",
    ]  # fmt: skip
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
