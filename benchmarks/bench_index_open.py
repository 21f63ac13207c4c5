"""Opening a photo index: reading its rows file, against the reader it replaced, in one run.

    python benchmarks/bench_index_open.py [--rows 300000] [--dimension 512] [--write docs/benchmarks.md]

A synthetic index of `--rows` rows (unit vectors, paths, content hashes, boxes) is written once with
`photo_index.store.write_version`; then each reader runs in its own process (so that its peak memory is its
own), alternating, twice: `store.read_rows` (the columns converted a batch at a time into preallocated numpy
arrays) and, as the baseline, the reader before 2026-12-05 (every column through Python lists: one Python
float per embedding value). Reported: seconds and peak resident memory of the reading process, the fastest
of the two runs of each (and the lower peak).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from markdown_report import publish_section

SECTION = "## Opening a photo index: reading its rows"

READER = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
from sapiensid_hf.photo_index.store import Rows, current_version, read_manifest, read_rows

def python_lists(version, manifest):
    import pyarrow.parquet as pq
    table = pq.read_table(version / "rows.parquet")
    return Rows(
        table.column("path").to_pylist(), table.column("content_hash").to_pylist(),
        np.asarray(table.column("person_index").to_pylist(), np.int64),
        np.asarray(table.column("box").to_pylist(), np.float32).reshape(-1, 4),
        np.asarray(table.column("person_found").to_pylist(), bool), np.asarray(table.column("face_found").to_pylist(), bool),
        np.asarray(table.column("embedding").to_pylist(), dtype=np.float32).reshape(table.num_rows, -1),
    )

folder, reader = Path(sys.argv[1]), sys.argv[2]
version = current_version(folder)
manifest = read_manifest(version)
start = time.perf_counter()
rows = (read_rows if reader == "batches" else python_lists)(version, manifest)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "checksum": float(rows.embeddings[:, 0].sum())}))
"""


def write_synthetic_index(folder: Path, rows: int, dimension: int) -> None:
    import faiss

    from sapiensid_hf.photo_index.store import Manifest, Rows, write_version

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(rows, dimension)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    table = Rows(
        [f"/photos/album/{i:07d}.jpg" for i in range(rows)], [f"{i:064x}" for i in range(rows)],
        np.full(rows, -1, np.int64), rng.uniform(0, 500, (rows, 4)).astype(np.float32), np.ones(rows, bool),
        rng.random(rows) < 0.5, embeddings,
    )  # fmt: skip
    index = faiss.IndexFlatIP(dimension)
    index.add(embeddings)
    folder.mkdir()
    write_version(folder, Manifest("synthetic", "none", True, dimension, "Flat", False, rows), table, index)


def read_in_a_process(folder: Path, reader: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", READER, str(folder), reader], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args()
    readers = {"batches": "`read_rows` (columns into numpy, a batch at a time)",
               "lists": "before 2026-12-05 (columns through Python lists)"}  # fmt: skip
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "synthetic.sidx"
        write_synthetic_index(folder, args.rows, args.dimension)
        for round_number in range(2):
            for reader in ("batches", "lists") if round_number == 0 else ("lists", "batches"):
                result = read_in_a_process(folder, reader)
                print(f"round {round_number + 1}, {reader}: {result['seconds']:.2f} s, {result['peak_gb']:.2f} GB", flush=True)
                if reader not in best or result["seconds"] < best[reader]["seconds"]:
                    best[reader] = {**result, "peak_gb": min(result["peak_gb"], best.get(reader, result)["peak_gb"])}
    if best["batches"]["checksum"] != best["lists"]["checksum"]:
        raise SystemExit("the two readers read different embeddings")
    baseline = best["lists"]
    data_gb = args.rows * args.dimension * 4 / 1e9
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_index_open.py --rows {args.rows} --dimension {args.dimension}` ({platform.machine()}; "
        f"a synthetic index of {args.rows:,} rows of {args.dimension}-d embeddings, {data_gb:.2f} GB of float32; each "
        "reader in its own process, 2 runs each in alternating order: the faster run's seconds, the lower run's "
        "peak memory (the reading process's maximum resident set)):",
        "",
        "| reader | seconds | speed vs before | peak memory GB | memory vs before |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for reader, name in readers.items():
        result = best[reader]
        lines.append(
            f"| {name} | {result['seconds']:.2f} | {baseline['seconds'] / result['seconds']:.1f}x | "
            f"{result['peak_gb']:.2f} | {result['peak_gb'] / baseline['peak_gb']:.2f}x |"
        )
    lines += ["", "Both read the same rows (checked). Every `sapiensid index` command and `PhotoIndex.open` read the rows "
              "this way; the faiss index file is read beside them.", ""]  # fmt: skip
    publish_section(lines, SECTION, args.write)


if __name__ == "__main__":
    main()
