"""Search at scale: exact (Flat) against approximate faiss indexes, on synthetic unit vectors, in one run.

    python benchmarks/bench_index_scale.py [--rows 100000] [--dimension 512] [--queries 500] [--write docs/benchmarks.md]

The rows are clustered unit vectors (identities with several noisy photos each, as a collection has),
at the shipped model's embedding width. Each index type is built with `photo_index.index.build_faiss_index`
(what `sapiensid index build --index-type` runs), then searched with the queries (other noisy photos of
indexed identities). Reported: build seconds, index memory (faiss serialised size), queries per second,
and recall@1 / @10 against the exact (Flat) search of the same run; speed ratios are against Flat.
The goal named in the issue: recall@10 >= 0.95 at >= 20x Flat's queries/s at 1M rows.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from markdown_report import publish_section

from sapiensid_hf.photo_index.index import build_faiss_index
from sapiensid_hf.photo_index.store import Rows

SECTION = "## Photo index at scale: exact against approximate search"
PHOTOS_PER_IDENTITY = 20


def synthetic(rows: int, dimension: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    identities = max(1, rows // PHOTOS_PER_IDENTITY)
    centres = rng.normal(size=(identities, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owner = rng.integers(0, identities, size=rows)
    vectors = centres[owner] + 0.06 * rng.normal(size=(rows, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    asked = centres[rng.choice(np.unique(owner), size=queries)] + 0.06 * rng.normal(size=(queries, dimension)).astype(np.float32)
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    return vectors.astype(np.float32), asked.astype(np.float32)


def timed_search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    _, ids = index.search(queries, k)
    return ids, len(queries) / (time.perf_counter() - started)


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(found[i, :k]) & set(truth[i, :k])) / k for i in range(len(truth))]))


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    vectors, queries = synthetic(args.rows, args.dimension, args.queries, args.seed)
    rows = Rows([""] * len(vectors), [""] * len(vectors), np.full(len(vectors), -1), np.zeros((len(vectors), 4), np.float32),
                np.ones(len(vectors), bool), np.ones(len(vectors), bool), vectors)  # fmt: skip
    lists = int(4 * np.sqrt(args.rows))
    variants = [("Flat", {}), (f"IVF{lists},Flat", {"nprobe": 16}), (f"IVF{lists},Flat", {"nprobe": 64}),
                ("HNSW32", {"efSearch": 64}), ("HNSW32", {"efSearch": 128})]  # fmt: skip
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_index_scale.py --rows {args.rows} --dimension {args.dimension} --queries {args.queries}` "
        f"on {platform.machine()}, faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads. Synthetic clustered unit "
        f"vectors ({PHOTOS_PER_IDENTITY} per identity on average, so a query's 10 nearest are real matches); recall against Flat in the same run.", "",
        "| index type | search setting | build s | memory MB | queries/s | speed vs Flat | recall@1 | recall@10 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]  # fmt: skip
    built, truth, flat_speed = {}, None, None
    for factory, setting in variants:
        if factory not in built:
            started = time.perf_counter()
            built[factory] = (build_faiss_index(rows, factory), time.perf_counter() - started)
        index, seconds = built[factory]
        base = faiss.downcast_index(index.index)
        if "nprobe" in setting:
            faiss.extract_index_ivf(base).nprobe = setting["nprobe"]
        if "efSearch" in setting:
            base.hnsw.efSearch = setting["efSearch"]
        ids, speed = timed_search(index, queries, 10)
        if truth is None:
            truth, flat_speed = ids, speed
        memory = faiss.serialize_index(index).nbytes / 1e6
        label = ", ".join(f"{k} {v}" for k, v in setting.items()) or "exact"
        lines.append(
            f"| {factory} | {label} | {seconds:.1f} | {memory:.0f} | {speed:.0f} | {speed / flat_speed:.1f}x | "
            f"{recall(ids, truth, 1):.3f} | {recall(ids, truth, 10):.3f} |"
        )
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
