"""Evaluate a SapiensID model on a benchmark: model + dataset root + benchmark -> tables and plots.

    sapiensid evaluate --model <folder or hub id> --dataset-root <benchmark folder> --benchmark market1501
    accelerate launch -m sapiensid_hf.evaluation.runner --model ... --dataset-root ... --benchmark ltcc

Writes into the output folder: `results.json`, `results.md`, `cmc.png` (ranking benchmarks) or
`roc.png` (verification), and the embedding cache `embeddings/<key>.npz`.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import PartialState

from sapiensid_cli.argument_types import positive_int, torch_device, worker_count

from ..cut_views import embedding_cuts, without_embedding_cuts
from ..parallel_processing import resolve_num_workers
from .benchmark_specs import BENCHMARKS, Benchmark, RankingEvaluation, get_benchmark
from .distance import aggregate_by_group, distance_matrix
from .embedding import embed_dataset_rows
from .intervals import interval_settings, ranking_intervals, verification_intervals
from .ranking import evaluate_ranking
from .report import markdown_table, plot_cmc, plot_roc, write_json
from .rerank import DEFAULT_RERANK, check_rerank_memory, rerank_embeddings
from .roc import DEFAULT_FARS, tar_at_far
from .single_shot import evaluate_single_shot
from .verification import verification_accuracy

logger = logging.getLogger(__name__)

PUBLIC_DEV = "public-dev"


def run_evaluation(
    model_path: str | os.PathLike,
    dataset_root: str | os.PathLike,
    benchmark: str,
    output_dir: str | os.PathLike,
    batch_size: int = 32,
    flip: bool = True,
    max_rank: int = 50,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    device: str | None = None,
    processor: Any = None,
    datasets_cache_dir: str | os.PathLike | None = None,
    standing_person_prior: bool = True,
    rerank: bool = False,
) -> dict:
    """Embed a benchmark with a model and score it under the benchmark's published protocols.

    Args:
        model_path: a saved SapiensID folder or hub id (`SapiensIDModel.from_pretrained`).
        dataset_root: the benchmark folder (for `verification`: the `.bin` file).
        benchmark: a key of `benchmark_specs.BENCHMARKS`.
        output_dir: where results.json / results.md / plots / the embedding cache go.
        batch_size: images per forward pass.
        flip: flip test-time augmentation (the official evaluation uses it).
        max_rank: CMC length.
        num_workers: DataLoader workers that decode and pre-process images (keypoint detection included).
        cache_dir: embedding cache folder (default `<output_dir>/embeddings`); `use_cache=False` disables it.
        device: torch device (default: the Accelerate process device).
        processor: an image processor to use instead of the model folder's (e.g. one with a custom detector).
        datasets_cache_dir: cache folder of `datasets` for the loaded benchmark table.
        standing_person_prior: on the re-identification benchmarks (every image a crop of one person), a
            crop in which the detector finds nobody gets the keypoints of a standing person filling it
            (processing/standing_person_prior.py) instead of the one "nobody" embedding. Never on
            verification pairs.
        rerank: also score the rankings after k-reciprocal re-ranking (rerank.py: Zhong et al. 2017,
            torchreid's k1 20, k2 6, lambda 0.3), reported beside the plain ones (`rankings_reranked`).
            Refused on a verification benchmark, and before anything is embedded when its matrices
            would not fit in free memory.

    Returns:
        The results dict written to results.json (on non-main processes of a multi-process launch: {}).
    """
    from ..inference import load_model, load_processor

    spec = get_benchmark(benchmark)
    if rerank and spec.verification:
        raise ValueError(f"{spec.name}: re-ranking orders a gallery for each query; a verification benchmark has pairs, not a gallery")
    output = Path(output_dir)
    state = PartialState()
    dataset = spec.load(Path(dataset_root), None if datasets_cache_dir is None else str(datasets_cache_dir))
    if rerank:  # before the embedding, which can take hours
        for evaluation in spec.rankings:
            check_rerank_memory(*(_side_size(dataset, role, spec.group_column) for role in (evaluation.query_role, evaluation.gallery_role)))
    model = load_model(model_path)
    processor = processor if processor is not None else load_processor(model_path, model.config)
    use_prior = standing_person_prior and not spec.verification and hasattr(processor, "standing_person_prior")
    if use_prior != processor.standing_person_prior:
        processor = copy.copy(processor)  # the caller's processor keeps its setting
        processor.standing_person_prior = use_prior
    embedded = embed_dataset_rows(
        model,
        processor,
        dataset,
        batch_size=batch_size,
        flip=flip,
        num_workers=num_workers,
        cache_dir=(cache_dir or output / "embeddings") if use_cache else None,
        device=device,
    )
    if not state.is_main_process:
        return {}
    embeddings = embedded.embeddings

    output.mkdir(parents=True, exist_ok=True)
    columns = dataset.remove_columns("image").to_dict()
    results: dict[str, Any] = {
        "benchmark": spec.name,
        "model": str(model_path),
        "dataset_root": str(dataset_root),
        "flip": flip,
        "embedding_cuts": list(embedding_cuts(model.config)),  # the folder's rule (cut_views.py); [1.0]: the photo as it is
        "num_images": len(dataset),
        # How many there were, per role, and how they were scored (the prior, or the one "nobody" embedding).
        "photos_without_person": _photos_without_person(embedded.detector_found_nobody, dataset["role"]),
        "standing_person_prior": use_prior,
        "rerank": dict(DEFAULT_RERANK) if rerank else None,
        "intervals": interval_settings(),
    }
    files = {"json": str(output / "results.json"), "markdown": str(output / "results.md")}
    if spec.verification:
        results["verification"], labels, scores = _score_verification(embeddings, columns)
        files["roc_plot"] = str(
            plot_roc(labels, scores, output / "roc.png", f"{spec.name}: {Path(dataset_root).name}")
        )
    else:
        results["rankings"] = _score_rankings(spec, embeddings, columns, max_rank)
        curves = {name: np.asarray(row["cmc"]) for name, row in results["rankings"].items() if row.get("cmc")}
        if rerank:
            results["rankings_reranked"] = _score_rankings(spec, embeddings, columns, max_rank, rerank=True)
            curves.update(
                (f"{name}, re-ranked", np.asarray(row["cmc"])) for name, row in results["rankings_reranked"].items() if row.get("cmc")
            )
        files["cmc_plot"] = str(plot_cmc(curves, output / "cmc.png", f"{spec.name}: CMC"))
    results["files"] = files
    write_json(results, output / "results.json")
    (output / "results.md").write_text(markdown_table(results))
    return results


def _photos_without_person(found_nobody: np.ndarray, roles: list[str]) -> dict[str, dict[str, int]]:
    roles = np.asarray(roles)
    return {
        str(role): {"count": int(found_nobody[roles == role].sum()), "of": int((roles == role).sum())}
        for role in dict.fromkeys(roles.tolist())
    }


def _rows(columns: dict[str, list], role: str) -> np.ndarray:
    rows = np.flatnonzero(np.asarray(columns["role"]) == role)
    if rows.size == 0:
        raise ValueError(f"the benchmark has no rows with role {role!r}")
    return rows


def _side_size(dataset: Any, role: str, group_column: str | None) -> int:
    """How many embeddings one role is ranked with: its rows, or its groups (tracklets) when averaged."""
    roles = np.asarray(dataset["role"])
    if group_column is None:
        return int((roles == role).sum())
    return len(set(np.asarray(dataset[group_column])[roles == role].tolist()))


def _side(embeddings: np.ndarray, columns: dict[str, list], role: str, group_column: str | None):
    """Embeddings and ids of one role, averaged per group (tracklet) when `group_column` is set."""
    rows = _rows(columns, role)
    ids = {name: np.asarray(columns[name])[rows] for name in ("pid", "camid", "clothes_id")}
    if group_column is None:
        return embeddings[rows], ids
    fused, first = aggregate_by_group(embeddings[rows], np.asarray(columns[group_column])[rows])
    return fused.numpy(), {name: values[first] for name, values in ids.items()}


def _score_rankings(
    spec: Benchmark, embeddings: np.ndarray, columns: dict[str, list], max_rank: int, rerank: bool = False
) -> dict:
    results = {}
    for evaluation in spec.rankings:
        query, q_ids = _side(embeddings, columns, evaluation.query_role, spec.group_column)
        gallery, g_ids = _side(embeddings, columns, evaluation.gallery_role, spec.group_column)
        distmat = rerank_embeddings(query, gallery) if rerank else distance_matrix(query, gallery).numpy()
        row = {"protocol": evaluation.protocol, "num_queries": len(query), "num_gallery": len(gallery)}
        try:
            row.update(_rank(evaluation, distmat, q_ids, g_ids, max_rank))
        except ValueError as error:  # e.g. no valid query under this protocol: report, do not abort
            row["error"] = str(error)
            logger.warning("%s / %s: %s", spec.name, evaluation.name, error)
        results[evaluation.name] = row
    return results


def _rank(evaluation: RankingEvaluation, distmat: np.ndarray, q: dict, g: dict, max_rank: int) -> dict:
    args = (distmat, q["pid"], g["pid"], q["camid"], g["camid"], q["clothes_id"], g["clothes_id"])
    if evaluation.single_shot:
        result = evaluate_single_shot(*args, protocol=evaluation.protocol, max_rank=max_rank)
        return {**result.to_dict(), "cmc": result.cmc.tolist()}
    result = evaluate_ranking(*args, protocol=evaluation.protocol, max_rank=max_rank)
    return {**result.to_dict(), "intervals": ranking_intervals(result, q["pid"]), "cmc": result.cmc.tolist()}


def _score_verification(
    embeddings: np.ndarray, columns: dict[str, list]
) -> tuple[dict, np.ndarray, np.ndarray]:
    pair_index = np.asarray(columns["pair_index"])
    if not (pair_index == np.arange(len(pair_index)) // 2).all():
        raise ValueError("verification rows must come in pair order (rows 2i and 2i+1 form pair i)")
    first, second = embeddings[0::2].astype(np.float64), embeddings[1::2].astype(np.float64)
    labels = np.asarray(columns["is_same"])[0::2]
    scores = np.sum(first * second, -1)
    verification = verification_accuracy(first, second, labels)
    summary = {"num_pairs": int(len(labels)), **verification.to_dict()}
    summary.update({f"tar@far={far:g}": tar for far, tar in tar_at_far(labels, scores, DEFAULT_FARS).items()})
    summary["intervals"] = verification_intervals(verification, labels, scores, DEFAULT_FARS)
    return summary, labels, scores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sapiensid evaluate",
        description="Evaluate a SapiensID model on a benchmark under its published protocol.",
        epilog="Benchmarks: " + ", ".join(BENCHMARKS) + f", {PUBLIC_DEV} (the development checks on the "
        "identities folder of ../shared/data: CUHK03 val, Con-ReID, LFW fold 7; --dataset-root is that folder)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="saved SapiensID folder or hub id (default: $SAPIENSID_MODEL, else the shipped sapiensid-small)",
    )
    parser.add_argument(
        "--dataset-root", required=True, help="benchmark folder (verification: the .bin file)"
    )
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS) + [PUBLIC_DEV])
    parser.add_argument(
        "--output-dir", default="outputs/evaluation", help="results, plots and the embedding cache"
    )
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--no-flip", action="store_true", help="turn off flip test-time augmentation")
    parser.add_argument("--max-rank", type=positive_int, default=50, help="longest CMC curve reported (default: 50)")
    parser.add_argument(
        "--num-workers",
        type=worker_count,
        default=None,
        metavar="N",
        help="DataLoader workers that decode and detect keypoints (default: auto = one per core, at most 8, "
        "shared among the processes of a launch; 0 = in the main process)",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="embedding cache (default: <output-dir>/embeddings)"
    )
    parser.add_argument("--no-cache", action="store_true", help="always recompute embeddings")
    parser.add_argument(
        "--device", type=torch_device, default=None, help="torch device (default: the Accelerate process device)"
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help=f"{PUBLIC_DEV}: do not score the untrained model of the same shape beside the model",
    )
    parser.add_argument(
        "--against",
        action="append",
        default=None,
        metavar="MODEL",
        help=f"{PUBLIC_DEV}: also score this model folder or hub id (repeatable) and report each figure of --model "
        "less its own, with the interval of the difference on the same people",
    )
    parser.add_argument(
        "--keypoint-cache",
        default=None,
        help=f"{PUBLIC_DEV}: folder of the detected keypoints, reused across runs (default: <output-dir>/keypoints)",
    )
    parser.add_argument(
        "--rerank",
        action="store_true",
        help="also score each ranking after k-reciprocal re-ranking (Zhong et al. 2017; torchreid's k1 20, k2 6, "
        "lambda 0.3), reported beside the plain scores; re-identification benchmarks and public-dev",
    )
    parser.add_argument(
        "--no-standing-person-prior",
        action="store_true",
        help="re-identification crops in which the detector finds nobody get no keypoints (every such crop the "
        "same embedding) instead of those of a standing person filling the crop (the default for person-crop "
        "benchmarks; never used on face pairs)",
    )
    return parser


def run_evaluation_from_args(args: argparse.Namespace) -> dict:
    """`run_evaluation` with the options of `build_parser()` (the CLI and examples/evaluate.py)."""
    if args.model is None:
        from ..inference import default_model_source

        args.model = default_model_source()
        if args.model is None:
            raise SystemExit("sapiensid evaluate: no model: pass --model (or set $SAPIENSID_MODEL)")
    if args.against and args.benchmark != PUBLIC_DEV:
        raise SystemExit(f"sapiensid evaluate: --against compares models on the development checks: use it with --benchmark {PUBLIC_DEV}")
    if args.benchmark == PUBLIC_DEV:
        return run_public_dev(
            args.model,
            args.dataset_root,
            args.output_dir,
            baseline=not args.no_baseline,
            against=tuple(args.against or ()),
            keypoint_cache_dir=args.keypoint_cache,
            batch_size=args.batch_size,
            flip=not args.no_flip,
            device=args.device or "cpu",
            num_workers=args.num_workers,
            standing_person_prior=not args.no_standing_person_prior,
            rerank=args.rerank,
        )
    return run_evaluation(
        args.model,
        args.dataset_root,
        args.benchmark,
        args.output_dir,
        batch_size=args.batch_size,
        flip=not args.no_flip,
        max_rank=args.max_rank,
        num_workers=resolve_num_workers(args.num_workers, PartialState().num_processes),
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        device=args.device,
        standing_person_prior=not args.no_standing_person_prior,
        rerank=args.rerank,
    )


def run_public_dev(
    model_path: str | os.PathLike,
    identities_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    baseline: bool = True,
    keypoint_cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    flip: bool = True,
    device: str = "cpu",
    num_workers: int | None = None,
    checks: tuple[str, ...] | None = None,
    standing_person_prior: bool = True,
    rerank: bool = False,
    against: Sequence[str | os.PathLike] = (),
) -> dict:
    """The development checks of `public_dev.py` (`checks`, None: all) for a model folder (and its untrained
    twin); `num_workers` processes decode and detect (None: auto); `standing_person_prior`, `rerank`: see
    `run_dev_checks`. `against`: other model folders or hub ids scored beside it, each on its own processor
    (the keypoints are `model_path`'s); the results' `differences` hold each figure of `model_path` less theirs."""
    from ..inference import checked_model_source, load_model, load_processor, untrained_model
    from .public_dev import DEV_CHECKS, UNTRAINED, run_dev_checks

    models, sources = {}, set()
    for path in (model_path, *against):
        source = checked_model_source(path)  # as load_model reads it: `~` expanded, a folder or a hub id
        source = os.path.realpath(source) if Path(source).exists() else source
        if source in sources:
            raise ValueError(f"--against {path}: that model is already being scored")
        sources.add(source)
        label = Path(str(path)).name or str(path)
        label = str(path) if label in models or label == UNTRAINED else label  # two folders of one name
        model = load_model(path)
        models[label] = (model, load_processor(path, model.config))
    model, processor = next(iter(models.values()))
    if baseline:  # random weights of the same shape, embedding the photo as it is (its centre cuts add nothing but cost)
        models[UNTRAINED] = (untrained_model(without_embedding_cuts(model.config)), processor)
    results = run_dev_checks(
        models, identities_root, output_dir, keypoint_cache_dir, checks=checks or DEV_CHECKS, batch_size=batch_size,
        flip=flip, device=device, num_workers=num_workers, standing_person_prior=standing_person_prior, rerank=rerank,
    )  # fmt: skip
    results.update(benchmark=PUBLIC_DEV, model=str(model_path))
    return results


# The sets the thresholds are chosen on: LFW fold-7 pairs (faces), CUHK03-val cross-camera pairs (bodies).
CALIBRATION_CHECKS = ("cuhk03_val", "lfw_fold7")


def calibrate_model_folder(
    model_dir: str | os.PathLike,
    identities_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    keypoint_cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int | None = None,
) -> dict[str, Any]:
    """Choose the model's verification thresholds on the development pairs (`evaluation/calibration.py`)
    and record them in the folder's config.json, where compare, the Space and the pipeline read them.
    Returns the record; the development results are written to `output_dir` as by `public-dev`."""
    from .calibration import embedding_rule_words, record_calibration

    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"{model_dir}: calibrate needs a local model folder (its config.json is rewritten)")
    results = run_public_dev(
        model_dir, identities_root, output_dir, baseline=False, keypoint_cache_dir=keypoint_cache_dir,
        batch_size=batch_size, device=device, num_workers=num_workers, checks=CALIBRATION_CHECKS,
    )  # fmt: skip
    [record] = results["calibration"].values()
    [cuts] = results["embedding_cuts"].values()
    record["source"] = (
        f"sapiensid calibrate {model_dir} --dataset-root {identities_root} ({embedding_rule_words(True, cuts)}, "
        f"{datetime.date.today().isoformat()}); development results in {Path(output_dir) / 'results.json'}"
    )
    record_calibration(model_dir, record)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = run_evaluation_from_args(args)
    if results and args.benchmark == PUBLIC_DEV:
        from .public_dev import dev_markdown

        print(dev_markdown(results))
        print(f"written: {', '.join(results['files'].values())}")
        return 0
    if results:
        print(markdown_table(results))
        print(f"written: {', '.join(results['files'].values())}")
        rankings = results.get("rankings", {})
        if rankings and all("error" in row for row in rankings.values()) and not results.get("verification"):
            return 1  # nothing could be scored: the table says why, the exit status must not say success
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
