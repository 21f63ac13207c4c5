"""How often the detector finds the person, before and after the person-crop fallback, on every shared photo.

    python benchmarks/bench_keypoint_rules.py [--workers 2] [--limit N] [--write docs/processor.md]

For each set of ../shared/data (every image: CUHK03 train + val, Con-ReID train + query + gallery, LFW
train + val, the 8 people photos) and each keypoint rule set (version 1: scene person detector + face
fallback; version 2: + the person-crop fallback, the default), it reports the share of images where
a person is found, the mean visible keypoints (of 19), the share with >= 8 of the 12 body points, and
the detector time per image (one thread per worker; both rule sets in the same run). Version 1 and
version 2 agree wherever the scene person detector finds someone, so version 1 is run only on the
images where version 2 did not use it (and reuses version 2's result elsewhere, which is exact).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from markdown_report import publish_section

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SECTION = "## Keypoints on pedestrian crops: measured"
SETS = {
    "CUHK03 (train + val)": ("identities/cuhk03", "*/*.jpg"),
    "Con-ReID (train + query + gallery)": ("identities/conreid", "*/*.jpg"),
    "LFW (train + val)": ("identities/lfw", "*/*/*.jpg"),
    "people photos": ("people", "*.jpg"),
}
_processors = {}


def _detect(path: str) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from sapiensid_hf.processing import SapiensIDImageProcessor

    if not _processors:
        _processors["v2"] = SapiensIDImageProcessor(detector_max_side=768)
        _processors["v1"] = SapiensIDImageProcessor(detector_max_side=768, person_crop_fallback=False)
    result = {}
    started = time.perf_counter()
    new = _processors["v2"]([path], return_tensors="np")
    result["v2_time"] = time.perf_counter() - started
    result["v2"] = (new["keypoints"][0], new["keypoint_source"][0])
    if new["keypoint_source"][0] == "pose":
        result["v1"], result["v1_time"] = result["v2"], result["v2_time"]
    else:
        started = time.perf_counter()
        old = _processors["v1"]([path], return_tensors="np")
        result["v1_time"] = time.perf_counter() - started
        result["v1"] = (old["keypoints"][0], old["keypoint_source"][0])
    return result


def summarise(results: list[dict], version: str) -> dict:
    keypoints = np.stack([result[version][0] for result in results])
    shown = (keypoints != -1).all(axis=-1)
    sources = defaultdict(int)
    for result in results:
        sources[result[version][1]] += 1
    return {
        "found": shown.any(axis=1).mean(),
        "visible": shown.sum(axis=1).mean(),
        "body8": (shown[:, 7:].sum(axis=1) >= 8).mean(),
        "ms": 1000 * np.mean([result[f"{version}_time"] for result in results]),
        "sources": dict(sources),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (a quick look)")
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args()
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for name, (folder, pattern) in SETS.items():
            files = sorted(str(path) for path in (SHARED / folder).glob(pattern))[: args.limit]
            if not files:
                print(f"skipping {name}: no images under {SHARED / folder}")
                continue
            results = list(pool.map(_detect, files, chunksize=32))
            before, after = summarise(results, "v1"), summarise(results, "v2")
            rows.append((name, len(files), before, after))
            print(name, len(files), before, after, flush=True)
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_keypoint_rules.py --workers {args.workers}` on every image of ../shared/data "
        "(one thread per worker). v1 = scene person detector + face fallback (`person_crop_fallback=False`); "
        "v2 = the default, with the person-crop fallback. Time = the processor's whole call per image.",
        "",
        "| set | images | person found v1 → v2 | visible keypoints v1 → v2 | ≥ 8 body points v1 → v2 | ms / image v1 → v2 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, count, before, after in rows:
        lines.append(
            f"| {name} | {count:,} | {before['found']:.2f} → {after['found']:.2f} | {before['visible']:.1f} → "
            f"{after['visible']:.1f} | {before['body8']:.2f} → {after['body8']:.2f} | {before['ms']:.0f} → {after['ms']:.0f} |"
        )
    lines += ["", "Keypoint sources with v2: " + "; ".join(f"{name}: {after['sources']}" for name, _, _, after in rows)]
    publish_section(lines, SECTION, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
