"""The Milvus backend against the faiss index on the same rows: insert and query throughput, same top-10.

    python benchmarks/bench_milvus.py [--rows 100000] [--queries 200] [--write docs/benchmarks.md]

Synthetic clustered unit vectors (bench_index_scale.synthetic) at the model's width go into a milvus-lite
collection (`photo_index.milvus_backend`, the client API a Milvus server answers) and into the faiss Flat
index (`photo_index.index.build_faiss_index`). Reported: rows inserted per second, queries per second
(one query per call, as an application asks, and one batch), and how many of the queries get the same
top-10 rows from both. Ratios are against faiss in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from bench_index_scale import synthetic
from markdown_report import publish_section

from sapiensid_hf.photo_index.index import build_faiss_index
from sapiensid_hf.photo_index.milvus_backend import MilvusPhotoIndex
from sapiensid_hf.photo_index.store import Manifest, Rows

SECTION = "## Milvus backend against faiss"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    vectors, queries = synthetic(args.rows, args.dimension, args.queries, args.seed)
    count = len(vectors)
    rows = Rows([f"photo_{i}.jpg" for i in range(count)], ["0" * 64] * count, np.full(count, -1), np.full((count, 4), -1, np.float32),
                np.ones(count, bool), np.ones(count, bool), vectors)  # fmt: skip

    started = time.perf_counter()
    flat = build_faiss_index(rows, "Flat")
    faiss_insert = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for query in queries:
        flat.search(query[None], 10)
    faiss_single = len(queries) / (time.perf_counter() - started)
    started = time.perf_counter()
    _, faiss_ids = flat.search(queries, 10)
    faiss_batch = len(queries) / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as folder:
        milvus = MilvusPhotoIndex(str(Path(folder) / "bench.db"))
        manifest = Manifest("synthetic", "none", False, args.dimension, "milvus FLAT IP", False, count)
        milvus._create(manifest)
        started = time.perf_counter()
        for start in range(0, count, 5000):
            milvus._insert(rows.take(np.arange(start, min(start + 5000, count))), start)
        milvus_insert = count / (time.perf_counter() - started)
        started = time.perf_counter()
        for query in queries:
            milvus.search(query[None], 10)
        milvus_single = len(queries) / (time.perf_counter() - started)
        started = time.perf_counter()
        answers = milvus.search(queries, 10)
        milvus_batch = len(queries) / (time.perf_counter() - started)
    same = np.mean([[hit.row for hit in hits] == faiss_ids[i].tolist() for i, hits in enumerate(answers)])
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_milvus.py --rows {args.rows} --queries {args.queries}`: {count} rows of {args.dimension}-d, "
        f"milvus-lite (embedded) against faiss Flat, exact search in both. Manifest fields: {', '.join(asdict(manifest))}.", "",
        "| backend | rows inserted / s | queries / s, one per call | queries / s, one batch | same top-10 as faiss |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| faiss Flat (baseline) | {faiss_insert:,.0f} (1.00x) | {faiss_single:,.0f} (1.00x) | {faiss_batch:,.0f} (1.00x) | - |",
        f"| Milvus (milvus-lite) | {milvus_insert:,.0f} ({milvus_insert / faiss_insert:.3f}x) | {milvus_single:,.0f} "
        f"({milvus_single / faiss_single:.2f}x) | {milvus_batch:,.0f} ({milvus_batch / faiss_batch:.2f}x) | {same:.3f} |",
    ]  # fmt: skip
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
