"""The development people's embeddings under the shipped rule, made once and kept between benchmark runs.

`development_embeddings(pipeline)` returns, per set, (embeddings, labels) of LFW fold 7 (faces),
CUHK03-val (bodies, with each photo's camera) and a Con-ReID subset (the first query people, at most 12
photos each), as `sapiensid evaluate --benchmark public-dev` embeds them (flip, keypoints from the shared
cache outputs/dev_keypoints when present). A photo in which nobody is found is left out. The embeddings
are kept in an .npz with the weights' fingerprint and reused only for the same weights and subset.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from sapiensid_hf.evaluation.public_dev import dev_keypoints, embed_rows, load_dev_sets
from sapiensid_hf.inference import load_pipeline, weights_fingerprint

REPO = Path(__file__).resolve().parents[1]
IDENTITIES = REPO.parent / "shared" / "data" / "identities"
DEFAULT_CACHE = REPO / "outputs" / "bench_clustering_embeddings.npz"
DEFAULT_KEYPOINT_CACHE = REPO / "outputs" / "dev_keypoints"
SETS = ("lfw_fold7", "cuhk03_val", "conreid")


def development_arguments(description: str, repeats: str, repeats_help: str) -> argparse.Namespace:
    """The command line of a benchmark on these embeddings: --model, `repeats` (default 2000), --seed,
    --cache, --keypoint-cache, --write."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=None)
    parser.add_argument(repeats, type=int, default=2000, help=repeats_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="embeddings kept between runs")
    parser.add_argument("--keypoint-cache", type=Path, default=DEFAULT_KEYPOINT_CACHE)
    parser.add_argument("--write", type=Path, default=None)
    return parser.parse_args()


def scoring_arguments(description: str) -> argparse.Namespace:
    """The command line of a benchmark that scores a model folder on the whole development sets: --model
    (default: the shipped model), --identities, --keypoint-cache (of `sapiensid evaluate`), --write."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "pretrained" / "sapiensid-small"), help="model folder")
    parser.add_argument("--identities", type=Path, default=IDENTITIES)
    parser.add_argument("--keypoint-cache", type=Path, default=DEFAULT_KEYPOINT_CACHE, help="of sapiensid evaluate")
    parser.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    return parser.parse_args()


def scoring_pipeline(model: str) -> Any:
    """The model folder's pipeline in float32, as `sapiensid evaluate` scores on a CPU (the shipped weights
    are float16)."""
    pipeline = load_pipeline(model)
    pipeline.model.float()
    return pipeline


def conreid_subset(dev: Any, people: int, per_person: int, seed: int) -> np.ndarray:
    """Rows of the first `people` query identities (sorted), at most `per_person` photos each."""
    pids = np.asarray(dev.dataset["pid"])
    roles = np.asarray(dev.dataset["role"])
    chosen = sorted(set(pids[roles == "query"].tolist()))[:people]
    rng = np.random.default_rng(seed)
    rows = []
    for pid in chosen:
        members = np.flatnonzero(pids == pid)
        rows += sorted(rng.choice(members, size=min(per_person, len(members)), replace=False).tolist())
    return np.asarray(rows)


def load_cached(path: Path, fingerprint: str, conreid_people: int) -> dict:
    """Embeddings and labels of an earlier run with the same weights and subset, if any."""
    if not path.is_file():
        return {}
    stored = np.load(path, allow_pickle=False)
    if str(stored["fingerprint"]) != fingerprint or int(stored["conreid_people"]) != conreid_people:
        return {}
    return {name: (stored[f"{name}_embeddings"], stored[f"{name}_labels"]) for name in SETS}


def save_cached(path: Path, fingerprint: str, conreid_people: int, data: dict) -> None:
    arrays = {f"{name}_{part}": value for name, (embeddings, labels) in data.items()
              for part, value in (("embeddings", embeddings), ("labels", labels))}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, fingerprint=fingerprint, conreid_people=conreid_people, **arrays)


def development_embeddings(
    pipeline: Any, conreid_people: int = 40, seed: int = 0, cache: Path = DEFAULT_CACHE,
    keypoint_cache: Path = DEFAULT_KEYPOINT_CACHE,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Set name -> (embeddings, labels "set:pid", camera ids) of the photos where somebody is found."""
    fingerprint = weights_fingerprint(pipeline.model)
    cached = load_cached(cache, fingerprint, conreid_people)
    sets = load_dev_sets(IDENTITIES)
    data = {}
    for name in SETS:
        dev = sets[name]
        keypoints = dev_keypoints(dev, pipeline.processor, keypoint_cache, num_workers=0)
        rows = conreid_subset(dev, conreid_people, 12, seed) if name == "conreid" else np.arange(len(dev.dataset))
        subset = dev.dataset.select(rows.tolist())
        found = (keypoints[rows] != -1).all(axis=-1).any(axis=-1)  # a photo with nobody is left out
        labels = np.asarray([f"{name}:{pid}" for pid in subset["pid"]])[found]
        cameras = np.asarray(subset["camid"])[found]
        if name in cached and np.array_equal(cached[name][1], labels):
            embeddings = cached[name][0]
        else:
            embeddings = embed_rows(pipeline.model, pipeline.processor, subset, keypoints[rows], flip=True)[found]
        data[name] = (embeddings, labels, cameras)
    save_cached(cache, fingerprint, conreid_people, {name: values[:2] for name, values in data.items()})
    return data


def calibrated_development_embeddings(args: argparse.Namespace) -> tuple[Any, dict]:
    """The pipeline of `args.model` and its development embeddings, for a benchmark of the false-match rates
    its calibration record's FAR curves give (refused, as a message, when the folder records none)."""
    pipeline = load_pipeline(args.model)
    calibration = pipeline.calibration
    if not calibration or not all("far_curve" in (calibration.get(kind) or {}) for kind in ("face", "body")):
        raise SystemExit(f"{pipeline.description} records no FAR curves: run `sapiensid calibrate` first")
    return pipeline, development_embeddings(pipeline, cache=args.cache, keypoint_cache=args.keypoint_cache)
