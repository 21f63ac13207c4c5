"""Build tests/fixtures/dev_subset.json: a fixed small subset of the development sets with its keypoints.

    .venv/bin/python scripts/make_dev_subset_fixture.py --identities ../shared/data/identities \
        --keypoint-cache outputs/dev_keypoints --people 50 --pairs 100

The shipped-model regression test (tests/test_shipped_model.py) embeds these photos (read from
../shared/data/identities; only paths and keypoints are stored here, never photos) and scores them with
the project's metrics. Keypoints come from the development keypoint cache (the processor's detector), so
the test runs without the detector and its figures do not move when the detector is not installed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sapiensid_hf.evaluation.public_dev import dev_keypoints, load_dev_sets
from sapiensid_hf.processing import SapiensIDImageProcessor

OUTPUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "dev_subset.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", required=True, type=Path)
    parser.add_argument("--keypoint-cache", required=True, type=Path)
    parser.add_argument("--people", type=int, default=50, help="CUHK03 val people (the first, by id)")
    parser.add_argument("--pairs", type=int, default=100, help="same and as many different LFW fold-7 pairs")
    args = parser.parse_args()
    sets = load_dev_sets(args.identities, ("cuhk03_val", "lfw_fold7"))
    processor = SapiensIDImageProcessor()

    cuhk = sets["cuhk03_val"]
    keypoints = dev_keypoints(cuhk, processor, args.keypoint_cache)
    pids = np.asarray(cuhk.dataset["pid"])
    chosen = np.isin(pids, np.unique(pids)[: args.people])
    cuhk_rows = [
        {"path": path, "pid": int(pid), "camid": int(camid), "keypoints": np.round(points, 6).tolist()}
        for path, pid, camid, points, keep in zip(
            cuhk.dataset["path"], pids, cuhk.dataset["camid"], keypoints, chosen, strict=True
        )
        if keep
    ]

    lfw = sets["lfw_fold7"]
    keypoints = dev_keypoints(lfw, processor, args.keypoint_cache)
    first, second, same = lfw.pairs
    picked = np.concatenate([np.flatnonzero(same)[: args.pairs], np.flatnonzero(~same)[: args.pairs]])
    paths = lfw.dataset["path"]
    used = sorted({int(index) for index in np.concatenate([first[picked], second[picked]])})
    position = {row: order for order, row in enumerate(used)}
    fixture = {
        "about": "CUHK03 val (first people by id) and LFW fold-7 pairs (first same / different ones); keypoints "
        "from the processor's detector (rules version 2); paths relative to ../shared/data/identities",
        "cuhk03_val": cuhk_rows,
        "lfw_images": [
            {"path": f"lfw/val/{paths[row]}", "keypoints": np.round(keypoints[row], 6).tolist()} for row in used
        ],
        "lfw_pairs": [[position[int(first[i])], position[int(second[i])], bool(same[i])] for i in picked],
    }
    OUTPUT.write_text(json.dumps(fixture) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}: {len(cuhk_rows)} CUHK03 images, {len(used)} LFW images, {len(picked)} pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
