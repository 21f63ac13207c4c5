"""Search at scale: exact (Flat) against approximate faiss indexes, on synthetic unit vectors, in one run.

    python benchmarks/bench_index_scale.py [--rows 100000] [--dimension 512] [--queries 500] [--write docs/benchmarks.md]
    python benchmarks/bench_index_scale.py --rows 1000000 --distribution fitted [--fit-embeddings FILE.npz]

The rows are clustered unit vectors (identities with several photos each, as a collection has), at the
shipped model's embedding width. `--distribution isotropic` (default): identity centres uniform on the
sphere, each photo its centre plus isotropic noise. `--distribution fitted`: centres and within-person
variation drawn from Gaussians fitted to real embeddings of labelled people (the shipped model on the
development people of ../shared/data/identities, as `benchmarks/bench_clustering.py` caches them), so the
vectors have the real embeddings' anisotropy and same-person / different-person cosines. Each index type is built with `photo_index.index.build_faiss_index`
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


def section_heading(rows: int) -> str:
    return f"## Photo index at scale: exact against approximate search, {rows:,} rows"
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


def fitted(rows: int, queries: int, seed: int, fit_file: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Vectors drawn like real embeddings: identity centres ~ N(mean, cov of the real people's mean
    embeddings), photos = centre + N(0, cov of the real within-person residuals), then L2-normalised."""
    real = np.load(fit_file, allow_pickle=False)
    centres, residuals = [], []
    for name in real.files:
        if not name.endswith("_embeddings"):
            continue
        vectors, labels = real[name].astype(np.float64), real[name.replace("_embeddings", "_labels")]
        for label in np.unique(labels):
            mine = vectors[labels == label]
            centres.append(mine.mean(axis=0))
            if len(mine) > 1:  # deviations from a group's own mean are smaller by (n - 1) / n in variance
                residuals.append((mine - mine.mean(axis=0)) * np.sqrt(len(mine) / (len(mine) - 1)))
    centres, residuals = np.asarray(centres), np.concatenate(residuals)
    rng = np.random.default_rng(seed)

    def sampler(samples: np.ndarray):
        values, vectors = np.linalg.eigh(np.cov(samples, rowvar=False))
        scale = vectors * np.sqrt(np.clip(values, 0, None))
        return lambda count: rng.standard_normal((count, samples.shape[1])) @ scale.T

    draw_centre, draw_residual = sampler(centres), sampler(residuals)
    identities = max(1, rows // PHOTOS_PER_IDENTITY)
    identity_centres = centres.mean(axis=0) + draw_centre(identities)
    owner = rng.integers(0, identities, size=rows)
    vectors = np.empty((rows, centres.shape[1]), np.float32)
    for start in range(0, rows, 100_000):
        stop = min(rows, start + 100_000)
        vectors[start:stop] = identity_centres[owner[start:stop]] + draw_residual(stop - start)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    asked = identity_centres[rng.choice(np.unique(owner), size=queries)] + draw_residual(queries)
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    same = np.sum(vectors[owner == owner[0]][:2].prod(axis=0)) if (owner == owner[0]).sum() > 1 else float("nan")
    note = (f"fitted to {len(centres)} real people ({len(residuals)} within-person residuals) of {fit_file.name}; "
            f"e.g. one drawn same-person cosine {same:.2f}")  # fmt: skip
    return vectors.astype(np.float32), asked.astype(np.float32), note


def family_of(factory: str) -> str:
    return "ivf" if factory.startswith("IVF") else "hnsw" if factory.startswith("HNSW") else "flat"


def timed_search(index, queries: np.ndarray, k: int, repeats: int = 3) -> tuple[np.ndarray, float]:
    """The ids found and the queries/s of the fastest of `repeats` searches of the whole batch (a shared
    machine only ever slows a run down, so the fastest is the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        _, ids = index.search(queries, k)
        best = min(best, time.perf_counter() - started)
    return ids, len(queries) / best


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
    parser.add_argument("--distribution", choices=("isotropic", "fitted"), default="isotropic")
    parser.add_argument("--families", default="ivf,hnsw", help="approximate index families beside Flat (default: ivf,hnsw)")
    parser.add_argument("--hnsw-links", default="32", help="HNSW graph degrees M to build, comma-separated (default: 32)")
    parser.add_argument("--fit-embeddings", type=Path, default=Path(__file__).resolve().parents[1] / "outputs" / "bench_clustering_embeddings.npz",
                        help="labelled real embeddings (NAME_embeddings / NAME_labels arrays) for --distribution fitted")  # fmt: skip
    args = parser.parse_args()
    if args.distribution == "fitted":
        vectors, queries, described = fitted(args.rows, args.queries, args.seed, args.fit_embeddings)
        args.dimension = vectors.shape[1]
    else:
        vectors, queries = synthetic(args.rows, args.dimension, args.queries, args.seed)
        described = "isotropic noise around centres uniform on the sphere"
    rows = Rows([""] * len(vectors), [""] * len(vectors), np.full(len(vectors), -1), np.zeros((len(vectors), 4), np.float32),
                np.ones(len(vectors), bool), np.ones(len(vectors), bool), vectors)  # fmt: skip
    lists = int(4 * np.sqrt(args.rows))
    variants = [("Flat", {})] + [(f"IVF{lists},Flat", {"nprobe": nprobe}) for nprobe in (16, 64, 128)]
    for links in (int(m) for m in args.hnsw_links.split(",")):
        variants += [(f"HNSW{links}", {"efSearch": ef}) for ef in (32, 40, 48, 64, 128)]
    families = set(args.families.split(","))
    variants = [(factory, setting) for factory, setting in variants if factory == "Flat" or family_of(factory) in families]
    heading = section_heading(args.rows) + ("" if args.distribution == "isotropic" else ", fitted to real embeddings")
    heading += "" if args.families == "ivf,hnsw" else f" ({args.families} only)"
    heading += "" if args.hnsw_links == "32" else f", HNSW M {args.hnsw_links}"
    lines = [
        heading, "",
        f"`python benchmarks/bench_index_scale.py --rows {args.rows} --dimension {args.dimension} --queries {args.queries} "
        f"--distribution {args.distribution} --families {args.families} --hnsw-links {args.hnsw_links}` on {platform.machine()}, faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads. "
        f"Synthetic clustered unit vectors ({PHOTOS_PER_IDENTITY} per identity on average, so a query's 10 nearest are real matches; "
        f"{described}); recall against Flat in the same run; queries/s: the fastest of 3 searches of the batch.", "",
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
    publish_section(lines, heading, args.write)


if __name__ == "__main__":
    main()
