"""Development checks on the public identity photos of ../shared/data/identities (see its README).

Three checks, each with the project's own protocol code:

| check | queries / pairs | rule |
| --- | --- | --- |
| `cuhk03_val` | CUHK03 val: camera 0 shots against camera 1 shots (`cam0_to_cam1`), and the reverse | Market-1501 rule (every gallery image is from the other camera), rank-1 / mAP |
| `conreid` | Con-ReID `query` against `bounding_box_test` | Market-1501 rule, rank-1 / mAP |
| `lfw_fold7` | LFW View-2 fold 7 (`lfw/pairs_val.txt`, 600 pairs) | 10-fold verification accuracy (threshold chosen on the other 9 splits of the fold's pairs, each split 30 same + 30 different pairs), TAR at FAR 1e-2 |

Keypoints are detected once per set with the processor's detector and cached (keyed by the file list and
the keypoint rules), and so are those of the photos' centre cuts for a model with an embedding rule of cuts
(cut_keypoint_cache.py); embeddings use flip test-time augmentation as the evaluation runner does (one
shared rule: `sapiensid_hf.embedding_views.embed_batch`). A model folder can be scored beside the randomly initialised model
of the same shape (`untrained_baseline`), the reference every number should be read against.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from ..cut_views import CUT_FEATURES, PHOTO_AS_IT_IS, embedding_cuts, has_cuts, rule_description
from ..data import load_lfw_pairs, load_manifest, load_market1501
from ..data.common import UndecodedImages
from ..embedding_views import embed_images
from ..parallel_processing import resolve_num_workers
from ..processing.image_decoding import load_rgb
from ..processing.square_resampling import SquarePadding
from ..processing.standing_person_prior import with_standing_person_prior
from .calibration import (
    KindThresholds,
    calibration_record,
    cross_camera_pairs,
    different_person_scores,
    embedding_rule_record,
    embedding_rule_words,
)
from .cut_keypoint_cache import (
    cut_keypoints_file,
    cut_keypoints_record,
    load_cut_keypoints,
    save_cut_keypoints,
)
from .distance import distance_matrix
from .intervals import (
    interval_settings,
    mean_of_parts_interval,
    paired_pairs_differences,
    paired_ranking_differences,
    ranking_intervals,
    ranking_per_query,
    verification_intervals,
)
from .ranking import evaluate_ranking
from .report import figure_cell, interval_words, nobody_rule, rerank_words
from .rerank import DEFAULT_RERANK, check_rerank_memory, rerank_embeddings
from .roc import tar_at_far
from .verification import verification_accuracy

logger = logging.getLogger(__name__)

DEV_CHECKS = ("cuhk03_val", "conreid", "lfw_fold7")
RANKING_CHECKS = ("cuhk03_val", "conreid")  # a query ranks a gallery; LFW fold 7 is pairs
# Sets whose every photo is a crop of one person: where the detector finds nobody, the standing-person
# prior places the keypoints (processing/standing_person_prior.py). Never the face pairs.
PERSON_CROP_CHECKS = ("cuhk03_val", "conreid")
UNTRAINED = "untrained (same shape)"


class DevSetError(ValueError):
    """The identities folder lacks a development set, or one of its images cannot be scored."""


@dataclass
class DevSet:
    name: str
    dataset: datasets.Dataset  # rows to embed (unique images)
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # verification: (row a, row b, same)


def load_dev_sets(root: str | os.PathLike, checks: tuple[str, ...] = DEV_CHECKS) -> dict[str, DevSet]:
    """The development sets of an identities folder (manifest.csv, cuhk03/, conreid/, lfw/)."""
    root = Path(root)
    unknown = sorted(set(checks) - set(DEV_CHECKS))
    if unknown:
        raise DevSetError(f"unknown development check(s) {', '.join(unknown)}; choose from {', '.join(DEV_CHECKS)}")
    sets = {}
    if "cuhk03_val" in checks:
        val = load_manifest(root / "manifest.csv", splits=["val"])
        sets["cuhk03_val"] = DevSet("cuhk03_val", val.filter(lambda source: source == "cuhk03", input_columns="source"))
    if "conreid" in checks:
        sets["conreid"] = DevSet("conreid", load_market1501(root / "conreid", ("query", "gallery")))
    if "lfw_fold7" in checks:
        pairs = load_lfw_pairs(root / "lfw" / "val", root / "lfw" / "pairs_val.txt")
        paths = pairs["path"]
        unique, inverse = np.unique(np.asarray(paths), return_inverse=True)
        first_rows = [paths.index(path) for path in unique]
        same = np.asarray(pairs["is_same"])[0::2]
        sets["lfw_fold7"] = DevSet("lfw_fold7", pairs.select(first_rows), (inverse[0::2], inverse[1::2], same))
    for dev in sets.values():
        if len(dev.dataset) == 0:
            raise DevSetError(f"{root}: the development set {dev.name} is empty")
    return sets


def dev_keypoints(
    dev: DevSet, processor: Any, cache_dir: str | os.PathLike, batch_size: int = 16, num_workers: int | None = None
) -> np.ndarray:
    """(N, 19, 2) keypoints of a set's rows, detected once (in `num_workers` processes, None = auto) and
    cached in `cache_dir/<set name>`."""
    from ..keypoint_cache import build_keypoint_cache

    images = UndecodedImages(dev.dataset)
    cache = build_keypoint_cache(
        images.__getitem__, dev.dataset["path"], processor, Path(cache_dir) / dev.name, batch_size=batch_size,
        num_workers=num_workers,
    )  # fmt: skip
    if cache.num_unreadable:
        listed = ", ".join(entry["path"] for entry in cache.unreadable[:5])
        raise DevSetError(f"{dev.name}: {cache.num_unreadable} image(s) cannot be read ({listed}); a score would be wrong")
    return cache.keypoints


def embed_rows(
    model: torch.nn.Module,
    processor: Any,
    dataset: datasets.Dataset,
    keypoints: np.ndarray,
    batch_size: int = 64,
    flip: bool = True,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> np.ndarray:
    """(N, D) L2-normalised embeddings of every row, with the given keypoints (no detection)."""
    return embed_rows_of_files(model, processor, UndecodedImages(dataset), keypoints, batch_size, flip, device, num_workers)


def embed_rows_of_files(
    model: torch.nn.Module,
    processor: Any,
    images: Sequence[Any],
    keypoints: np.ndarray,
    batch_size: int = 64,
    flip: bool = True,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> np.ndarray:
    """(N, D) L2-normalised embeddings of image files at the given keypoints (no detection on the photos;
    on their centre cuts when the model's rule has them); `num_workers` processes decode and resize (the
    project's one embedding loop, `embedding_views.embed_images`)."""
    return _embed_files(model, processor, images, keypoints, batch_size, flip, device, num_workers)[0]


def embed_dev_set(
    model: torch.nn.Module,
    processor: Any,
    dev: DevSet,
    keypoints: np.ndarray,
    cache_dir: str | os.PathLike,
    batch_size: int = 64,
    flip: bool = True,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> np.ndarray:
    """`embed_rows` of a development set, with the keypoints of its photos' centre cuts (the model's
    embedding rule) read from the set's folder in `cache_dir` when an earlier run left them, else detected
    and left there (cut_keypoint_cache.py): the same embeddings, a third of the time."""
    scales = embedding_cuts(model.config)
    images = UndecodedImages(dev.dataset)
    if scales == PHOTO_AS_IT_IS:
        return _embed_files(model, processor, images, keypoints, batch_size, flip, device, num_workers)[0]
    path = cut_keypoints_file(Path(cache_dir) / dev.name, scales)
    record = cut_keypoints_record(dev.dataset["path"], keypoints, scales, processor)
    known = load_cut_keypoints(path, record)
    embeddings, cut_keypoints = _embed_files(model, processor, images, keypoints, batch_size, flip, device, num_workers, known)
    if known is None:
        save_cut_keypoints(path, record, cut_keypoints)
    return embeddings


def _embed_files(
    model: torch.nn.Module,
    processor: Any,
    images: Sequence[Any],
    keypoints: np.ndarray,
    batch_size: int,
    flip: bool,
    device: str | torch.device,
    num_workers: int,
    cut_keypoints: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The embeddings, and the keypoints their centre cuts were read at (None for the photo as it is)."""
    model = model.to(device).eval()
    chunks, cuts = [], []
    batches = embed_images(
        model, processor, images, batch_size, torch.device(device), flip, num_workers, keypoints=keypoints, cut_keypoints=cut_keypoints
    )  # fmt: skip
    for batch in batches:
        if batch.failures:
            raise DevSetError(f"a development image cannot be embedded, so no score would be right: {batch.failures[0][1]}")
        chunks.append(batch.embeddings)
        if has_cuts(batch.features):
            cuts.append(batch.features[CUT_FEATURES["keypoints"]].numpy())
    return torch.cat(chunks).numpy(), (np.concatenate(cuts) if cuts else None)


def score_dev_set(dev: DevSet, embeddings: np.ndarray, max_rank: int = 20, rerank: bool = False) -> dict[str, Any]:
    """The check's metrics (fractions in [0, 1]) and its CMC curves / verification scores for the plots;
    `rerank`: the rankings after k-reciprocal re-ranking (a ranking check only)."""
    if rerank and dev.name not in RANKING_CHECKS:
        raise ValueError(f"{dev.name}: re-ranking orders a gallery for each query; this check has pairs, not a gallery")
    if dev.name in RANKING_CHECKS:
        pids, camids = np.asarray(dev.dataset["pid"]), np.asarray(dev.dataset["camid"])
        return {
            part: _ranking(embeddings, pids, camids, is_query, is_gallery, max_rank, rerank)
            for part, (is_query, is_gallery) in _ranking_sides(dev).items()
        }
    first, second, same = dev.pairs
    # pairs.txt lists a fold's same-person pairs, then its different-person ones: interleave them so each
    # of the 10 contiguous splits holds both kinds in the fold's proportion.
    order = balanced_split_order(same)
    first, second, same = first[order], second[order], same[order]
    a, b = embeddings[first].astype(np.float64), embeddings[second].astype(np.float64)
    scores = np.sum(a * b, axis=1)
    verification = verification_accuracy(a, b, same, n_folds=10)
    return {
        "pairs": {
            "accuracy": verification.accuracy,
            "accuracy_std": verification.accuracy_std,
            "tar@far=0.01": tar_at_far(same, scores, (1e-2,))[1e-2],
            "intervals": verification_intervals(verification, same, scores, (1e-2,)),
            "num_pairs": int(len(same)),
            "_correct": verification.held_out_correct.astype(int).tolist(),
            "_scores": scores.tolist(),
            "_labels": same.astype(int).tolist(),
        }
    }


def model_differences(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Each figure of `first` less the same figure of `second` (two models' `score_dev_set` results on the
    same sets, before their per-query records are dropped), with the interval of the difference when the
    same people (pairs) are drawn for both models (intervals.py)."""
    differences: dict[str, Any] = {}
    for name, parts in first.items():
        differences[name] = {}
        for part, values in parts.items():
            other = second[name][part]
            if "_queries" in values:
                differences[name][part] = paired_ranking_differences(values["_queries"], other["_queries"])
            else:
                differences[name][part] = paired_pairs_differences(
                    *({"same": model["_labels"], "scores": model["_scores"], "correct": model["_correct"]} for model in (values, other)),
                    (1e-2,),
                )
    return differences


def balanced_split_order(same: np.ndarray) -> np.ndarray:
    """A pair order in which every contiguous tenth holds same- and different-person pairs in proportion:
    pairs sorted by their rank within their kind divided by the kind's count (stable)."""
    same = np.asarray(same, dtype=bool)
    position = np.empty(len(same), dtype=np.float64)
    for kind in (True, False):
        members = np.flatnonzero(same == kind)
        position[members] = (np.arange(len(members)) + 0.5) / max(len(members), 1)
    return np.argsort(position, kind="stable")


def _ranking_sides(dev: DevSet) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A ranking check's rankings: name -> (query rows, gallery rows) as boolean masks."""
    if dev.name == "cuhk03_val":
        camids = np.asarray(dev.dataset["camid"])
        return {"cam0_to_cam1": (camids == 0, camids == 1), "cam1_to_cam0": (camids == 1, camids == 0)}
    roles = np.asarray(dev.dataset["role"])
    return {"query_to_gallery": (roles == "query", roles == "gallery")}


def _ranking(embeddings, pids, camids, is_query, is_gallery, max_rank, rerank=False) -> dict[str, Any]:
    query, gallery = embeddings[is_query], embeddings[is_gallery]
    distances = rerank_embeddings(query, gallery) if rerank else distance_matrix(query, gallery, metric="cosine")
    result = evaluate_ranking(
        distances, pids[is_query], pids[is_gallery], camids[is_query], camids[is_gallery], max_rank=max_rank
    )
    summary = result.to_dict(ranks=(1, 5, 10))
    summary["intervals"] = ranking_intervals(result, pids[is_query])
    summary["_queries"] = ranking_per_query(result, pids[is_query])
    summary.update(num_queries=int(is_query.sum()), num_gallery=int(is_gallery.sum()), _cmc=result.cmc.tolist())
    return summary


def run_dev_checks(
    models: dict[str, tuple[torch.nn.Module, Any]],
    root: str | os.PathLike,
    output_dir: str | os.PathLike,
    keypoint_cache_dir: str | os.PathLike | None = None,
    checks: tuple[str, ...] = DEV_CHECKS,
    batch_size: int = 64,
    flip: bool = True,
    device: str = "cpu",
    num_workers: int | None = None,
    standing_person_prior: bool = True,
    rerank: bool = False,
) -> dict[str, Any]:
    """Score every (model, processor) of `models` on the checks; writes results.json / results.md / plots.

    Keypoints come from the first model's processor (every model is scored on the same keypoints).
    `num_workers` processes decode and detect (None: auto, one per core, at most 8; 0: this process).
    `standing_person_prior`: the photos of the person-crop sets (`PERSON_CROP_CHECKS`) in which the detector
    finds nobody get the keypoints of a standing person filling the crop; off, they get none (and so all
    one embedding). Either way `photos_without_person` counts them. `rerank`: the ranking checks are also
    scored after k-reciprocal re-ranking (`results["reranked"]`, beside the plain figures, which stay
    what a model is judged and calibrated on).
    """
    from .report import plot_cmc, plot_roc

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(keypoint_cache_dir) if keypoint_cache_dir is not None else output / "keypoints"
    sets = load_dev_sets(root, checks)
    reranked_sets = [name for name in RANKING_CHECKS if rerank and name in sets]
    for name in reranked_sets:  # before the embedding
        for is_query, is_gallery in _ranking_sides(sets[name]).values():
            check_rerank_memory(int(is_query.sum()), int(is_gallery.sum()))
    first_processor = next(iter(models.values()))[1]
    num_workers = resolve_num_workers(num_workers)
    keypoints = {name: dev_keypoints(dev, first_processor, cache_dir, num_workers=num_workers) for name, dev in sets.items()}
    results: dict[str, Any] = {
        "identities_root": str(root), "flip": flip, "models": {}, "calibration": {},
        "photos_without_person": {name: photos_without_person(points) for name, points in keypoints.items()},
        "standing_person_prior": [name for name in PERSON_CROP_CHECKS if standing_person_prior and name in sets],
        # Each model's embedding rule (cut_views.py): its folder's centre cuts, or [1.0] for the photo as it is.
        "embedding_cuts": {label: list(embedding_cuts(model.config)) for label, (model, _) in models.items()},
        "rerank": dict(DEFAULT_RERANK) if reranked_sets else None,
        "intervals": interval_settings(),
    }  # fmt: skip
    if reranked_sets:
        results["reranked"] = {}
    for name in results["standing_person_prior"]:
        keypoints[name] = with_crop_prior(sets[name], keypoints[name])
    for label, (model, processor) in models.items():
        per_model, embedded = {}, {}
        for name, dev in sets.items():
            embedded[name] = embed_dev_set(model, processor, dev, keypoints[name], cache_dir, batch_size, flip, device, num_workers)
            per_model[name] = score_dev_set(dev, embedded[name])
            logger.info("%s / %s: %s", label, name, summary_line(per_model[name]))
            if name in reranked_sets:
                results["reranked"].setdefault(label, {})[name] = score_dev_set(dev, embedded[name], rerank=True)
                logger.info("%s / %s, re-ranked: %s", label, name, summary_line(results["reranked"][label][name]))
        results["models"][label] = per_model
        if {"cuhk03_val", "lfw_fold7"} <= set(sets):
            results["calibration"][label] = dev_calibration(sets, embedded, label, flip, embedding_cuts(model.config))
    results["headline_intervals"] = {label: headline_intervals(per_model) for label, per_model in results["models"].items()}
    first, *others = results["models"]
    if others:  # the first model against each other one, on the same people
        results["differences"] = {other: model_differences(results["models"][first], results["models"][other]) for other in others}
    if reranked_sets:  # what re-ranking changes, each model against itself
        results["reranked_differences"] = {
            label: model_differences(reranked, {name: results["models"][label][name] for name in reranked})
            for label, reranked in results["reranked"].items()
        }
    files = {"json": str(output / "results.json"), "markdown": str(output / "results.md")}
    for name in sets:
        if name == "lfw_fold7":
            for index, (label, per_model) in enumerate(results["models"].items()):
                pairs = per_model[name]["pairs"]
                path = output / f"roc_lfw_fold7_{index}.png"
                plot_roc(np.asarray(pairs["_labels"]), np.asarray(pairs["_scores"]), path, f"LFW fold 7: {label}")
                files[f"roc_lfw_fold7_{index}"] = str(path)
        else:
            curves = {
                f"{label}: {part}": np.asarray(values["_cmc"])
                for label, per_model in results["models"].items()
                for part, values in per_model[name].items()
            }
            curves.update(
                (f"{label}: {part}, re-ranked", np.asarray(values["_cmc"]))
                for label, per_model in results.get("reranked", {}).items()
                for part, values in per_model.get(name, {}).items()
            )
            files[f"cmc_{name}"] = str(plot_cmc(curves, output / f"cmc_{name}.png", f"{name}: CMC"))
    results["files"] = files
    public = _without_private(results)
    (output / "results.json").write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    (output / "results.md").write_text(dev_markdown(public), encoding="utf-8")
    return public


def with_crop_prior(dev: DevSet, keypoints: np.ndarray) -> np.ndarray:
    """A person-crop set's keypoints with the standing-person prior on its rows without any: placed on the
    photo's extent in its padded square, decoded as the processor decodes it (EXIF orientation included)."""
    images = UndecodedImages(dev.dataset)

    def crop_box_of(row: int) -> tuple[float, float, float, float]:
        rgb = load_rgb(images[row], f"{dev.name} row {row}")
        return SquarePadding.of(*rgb.shape[:2]).content_box()

    return with_standing_person_prior(keypoints, crop_box_of)[0]


def photos_without_person(keypoints: np.ndarray) -> dict[str, int]:
    """How many rows have no detected keypoint at all. Without the standing-person prior the model gives
    every such photo one and the same embedding (its semantic head pools at keypoints only); the protocols
    score them anyway, so the results say how many there are."""
    return {"count": int((~(keypoints != -1).any(axis=(1, 2))).sum()), "of": len(keypoints)}


def dev_calibration(
    sets: dict[str, DevSet], embeddings: dict[str, np.ndarray], label: str, flip: bool, cut_scales: Sequence[float] = PHOTO_AS_IT_IS
) -> dict[str, Any]:
    """The verification thresholds of `evaluation/calibration.py` from the LFW fold-7 pairs (faces) and the
    cross-camera pairs of CUHK03-val (bodies), the FAR 1e-2 thresholds and FAR curves from every
    different-person pair of each set's photos; `flip`: whether the embeddings had flip test-time augmentation,
    `cut_scales`: the embedding rule they were made under (cut_views.py)."""
    first, second, same = sets["lfw_fold7"].pairs
    faces = embeddings["lfw_fold7"]
    # A FAR wants far more different-person pairs than the protocol's 300: every pair of the fold's photos.
    different = different_person_scores(faces, np.asarray(sets["lfw_fold7"].dataset["pid"]))
    every_pair = f"every different-person pair of LFW fold 7's {len(faces)} photos"
    face = KindThresholds.from_pairs(
        np.sum(faces[first] * faces[second], axis=1), same, balanced=False, different_scores=different, far_from=every_pair
    )
    face = face.with_far_curve(different, every_pair)
    cuhk = sets["cuhk03_val"].dataset
    scores, same = cross_camera_pairs(embeddings["cuhk03_val"], np.asarray(cuhk["pid"]), np.asarray(cuhk["camid"]))
    # Rates are read for galleries that mix photos of one camera (one scene, one light) with others, and
    # different people of one camera score higher: the FAR is measured on every pair, both cameras.
    body_different = different_person_scores(embeddings["cuhk03_val"], np.asarray(cuhk["pid"]))
    every_body_pair = f"every different-person pair of CUHK03 val's {len(embeddings['cuhk03_val'])} photos, same camera or not"
    body = KindThresholds.from_pairs(scores, same, balanced=True, different_scores=body_different, far_from=every_body_pair)
    body = body.with_far_curve(body_different, every_body_pair)
    augmentation = embedding_rule_words(flip, cut_scales)
    source = f"sapiensid evaluate --benchmark public-dev ({label}, {augmentation})"
    return calibration_record(face, body, source, embedding_rule_record(flip, cut_scales))


def summary_line(metrics: dict[str, Any]) -> str:
    parts = []
    for part, values in metrics.items():
        if "rank1" in values:
            parts.append(f"{part} rank-1 {100 * values['rank1']:.1f} mAP {100 * values['mAP']:.1f}")
        else:
            parts.append(f"{part} acc {100 * values['accuracy']:.1f} TAR@1e-2 {100 * values['tar@far=0.01']:.1f}")
    return "; ".join(parts)


def headline(results: dict[str, Any], label: str) -> dict[str, float]:
    """The figures a model is shipped on: CUHK03-val rank-1 (mean of both directions), Con-ReID rank-1, LFW
    fold-7 accuracy and TAR at FAR 1e-2."""
    per_model = results["models"][label]
    headline = {}
    if "cuhk03_val" in per_model:
        headline["cuhk03_val_rank1"] = float(np.mean([v["rank1"] for v in per_model["cuhk03_val"].values()]))
    if "conreid" in per_model:
        headline["conreid_rank1"] = per_model["conreid"]["query_to_gallery"]["rank1"]
    if "lfw_fold7" in per_model:
        headline["lfw_fold7_accuracy"] = per_model["lfw_fold7"]["pairs"]["accuracy"]
        headline["lfw_fold7_tar@far=0.01"] = per_model["lfw_fold7"]["pairs"]["tar@far=0.01"]
    return headline


def headline_intervals(per_model: dict[str, Any]) -> dict[str, list[float]]:
    """The intervals of `headline`'s figures (one model's `score_dev_set` results, before their per-query
    records are dropped): CUHK03-val rank-1 as the mean of both directions, the same people drawn for both."""
    intervals = {}
    if "cuhk03_val" in per_model:
        directions = [values["_queries"] for values in per_model["cuhk03_val"].values()]
        intervals["cuhk03_val_rank1"] = mean_of_parts_interval(directions, "rank1")
    if "conreid" in per_model:
        intervals["conreid_rank1"] = per_model["conreid"]["query_to_gallery"]["intervals"]["rank1"]
    if "lfw_fold7" in per_model:
        for metric in ("accuracy", "tar@far=0.01"):
            intervals[f"lfw_fold7_{metric}"] = per_model["lfw_fold7"]["pairs"]["intervals"][metric]
    return intervals


def score_dev_subset(model: torch.nn.Module, processor: Any, subset: dict[str, Any], identities_root: str | os.PathLike, batch_size: int = 64) -> dict[str, float]:
    """The fixed development subset of tests/fixtures/dev_subset.json (50 CUHK03-val people, camera 0 ->
    1; 200 LFW fold-7 pairs, 10-fold accuracy), on its recorded keypoints, with flip: the figures of the
    shipped model's regression floors and of the learning-curve tables in docs/training.md."""
    root = Path(identities_root)

    def embed(rows: list[dict[str, Any]]) -> np.ndarray:
        images = [str(root / row["path"]) for row in rows]
        keypoints = np.asarray([row["keypoints"] for row in rows], dtype=np.float32)
        return embed_rows_of_files(model, processor, images, keypoints, batch_size)

    rows = subset["cuhk03_val"]
    embeddings = embed(rows)
    pids, camids = np.array([row["pid"] for row in rows]), np.array([row["camid"] for row in rows])
    query, gallery = camids == 0, camids == 1
    ranking = evaluate_ranking(
        distance_matrix(embeddings[query], embeddings[gallery]), pids[query], pids[gallery], camids[query], camids[gallery]
    )
    faces = embed(subset["lfw_images"])
    pairs = np.array([[a, b] for a, b, _ in subset["lfw_pairs"]])
    same = np.array([flag for _, _, flag in subset["lfw_pairs"]])
    order = balanced_split_order(same)  # every tenth: same and different pairs
    pairs, same = pairs[order], same[order]
    verification = verification_accuracy(faces[pairs[:, 0]], faces[pairs[:, 1]], same, n_folds=10)
    return {"cuhk03_subset_rank1": float(ranking.cmc[0]), "lfw_subset_accuracy": float(verification.accuracy)}


def dev_markdown(results: dict[str, Any]) -> str:
    labels = list(results["models"])
    lines = ["| check | metric | " + " | ".join(labels) + " |", "| --- | --- |" + " --- |" * len(labels)]
    first = results["models"][labels[0]]
    for name, parts in first.items():
        for part, values in parts.items():
            metrics = ("rank1", "mAP") if "rank1" in values else ("accuracy", "tar@far=0.01")
            for metric in metrics:
                cells = [figure_cell(results["models"][label][name][part], metric, 1) for label in labels]
                lines.append(f"| {name} {part} | {metric} (%) | " + " | ".join(cells) + " |")
    reranked = results.get("reranked", {})
    for name, parts in reranked.get(labels[0], {}).items():
        for part in parts:
            for metric in ("rank1", "mAP"):
                cells = [figure_cell(reranked[label][name][part], metric, 1) for label in labels]
                lines.append(f"| {name} {part}, re-ranked | {metric} (%) | " + " | ".join(cells) + " |")
    drawn = results.get("intervals")
    if drawn:
        lines += ["", interval_words(drawn)]
    mean_rank1 = {label: values["cuhk03_val_rank1"] for label, values in results.get("headline_intervals", {}).items()
                  if "cuhk03_val_rank1" in values}  # fmt: skip
    if mean_rank1:
        cells = [f"{label} {100 * headline(results, label)['cuhk03_val_rank1']:.1f} ({100 * low:.1f}-{100 * high:.1f})"
                 for label, (low, high) in mean_rank1.items()]  # fmt: skip
        lines += ["", "CUHK03-val rank-1, the mean of both directions (the headline figure): " + "; ".join(cells) + "."]
    model_columns = {f"{labels[0]} - {other}": values for other, values in results.get("differences", {}).items()}
    lines += _differences_table(model_columns, f"{labels[0]} less each other model")
    rerank_columns = {f"{label}: re-ranked - plain": values for label, values in results.get("reranked_differences", {}).items()}
    lines += _differences_table(rerank_columns, "re-ranked less plain, each model")
    settings = results.get("rerank")
    if reranked and settings:
        lines += ["", f"Re-ranked: {rerank_words(settings)} of the same embeddings."]
    rules = {label: cuts for label, cuts in results.get("embedding_cuts", {}).items() if tuple(cuts) != PHOTO_AS_IT_IS}
    for label, cuts in rules.items():
        lines += ["", f"{label} embeds each photo as {rule_description(cuts)} (its folder's `embedding_cuts`)."]
    missing = results.get("photos_without_person", {})
    if missing:
        with_prior = results.get("standing_person_prior", [])
        for rule, names in ((True, [n for n in missing if n in with_prior]), (False, [n for n in missing if n not in with_prior])):
            if names:
                counts = ", ".join(f"{name} {missing[name]['count']} of {missing[name]['of']}" for name in names)
                lines += ["", f"Photos in which the detector found nobody: {counts}; {nobody_rule(rule)}."]
    return "\n".join(lines) + "\n"


def _differences_table(columns: dict[str, Any], what: str) -> list[str]:
    """Paired differences (`model_differences`, one column each: title -> check -> part -> metric) in
    points, with their intervals, under a line saying `what` they are."""
    if not columns:
        return []
    titles = list(columns)
    lines = [
        "",
        f"Differences, {what}, in points (95 % interval of the difference, the same people drawn for both: an "
        "interval that holds 0 is a difference another draw of people could reverse):",
        "",
        "| check | metric | " + " | ".join(titles) + " |",
        "| --- | --- |" + " --- |" * len(titles),
    ]
    for name, parts in columns[titles[0]].items():
        for part, metrics in parts.items():
            for metric in metrics:
                cells = []
                for title in titles:
                    entry = columns[title][name][part][metric]
                    low, high = entry["interval"]
                    cells.append(f"{100 * entry['difference']:+.1f} ({100 * low:+.1f} to {100 * high:+.1f})")
                lines.append(f"| {name} {part} | {metric} | " + " | ".join(cells) + " |")
    return lines


def _without_private(results: Any) -> Any:
    # CMC curves stay (plots are made from them); raw pair scores are dropped from results.json.
    if isinstance(results, dict):
        return {
            ("cmc" if key == "_cmc" else key): _without_private(value)
            for key, value in results.items()
            if key not in ("_scores", "_labels", "_correct", "_queries")
        }
    return results


__all__ = [
    "DEV_CHECKS",
    "PERSON_CROP_CHECKS",
    "DevSet",
    "DevSetError",
    "UNTRAINED",
    "balanced_split_order",
    "dev_keypoints",
    "embed_dev_set",
    "embed_rows",
    "embed_rows_of_files",
    "score_dev_subset",
    "headline",
    "load_dev_sets",
    "run_dev_checks",
    "score_dev_set",
    "with_crop_prior",
]
