"""Learning curve of a training run: its logged loss and the development checks of each checkpoint.

    .venv/bin/python scripts/learning_curve.py --run outputs/sapiensid_small \
        --identities ../shared/data/identities --checks cuhk03_val lfw_fold7 --every 500 \
        --plot docs/images/learning_curve_small.png --table outputs/sapiensid_small/learning_curve.json

Each checkpoint is exported to a model folder (the AdaFace head dropped) and scored with
`sapiensid_hf.evaluation.public_dev` on keypoints cached in --keypoint-cache (default <run>/dev_keypoints); finished points are kept
in the table file, so the script can be re-run while the run goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="the training output_dir")
    parser.add_argument("--identities", required=True, type=Path, help="../shared/data/identities")
    parser.add_argument("--checks", nargs="+", default=["cuhk03_val", "lfw_fold7"])
    parser.add_argument("--every", type=int, default=500, help="score checkpoints whose step is a multiple of this")
    parser.add_argument("--table", type=Path, default=None, help="json of the points (default: <run>/learning_curve.json)")
    parser.add_argument("--plot", type=Path, default=None, help="png of loss and dev metrics against step")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--keypoint-cache", type=Path, default=None, help="detected keypoints of the dev sets (default: <run>/dev_keypoints)"
    )
    return parser.parse_args()


def score_checkpoint(checkpoint: Path, identities: Path, checks: tuple[str, ...], cache: Path, batch_size: int) -> dict:
    from sapiensid_hf.evaluation.public_dev import headline, run_dev_checks
    from sapiensid_hf.inference import load_processor
    from sapiensid_hf.modeling import SapiensIDModel
    from sapiensid_hf.training.export import export_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        exported = export_checkpoint(checkpoint, Path(folder) / "model")
        model = SapiensIDModel.from_pretrained(exported)
        processor = load_processor(exported, model.config)
        results = run_dev_checks(
            {"model": (model, processor)}, identities, Path(folder) / "dev", keypoint_cache_dir=cache,
            checks=checks, batch_size=batch_size,
        )  # fmt: skip
    return headline(results, "model")


def plot(points: list[dict], losses: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, dev_axis) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [entry["step"] for entry in losses]
    loss_axis.plot(steps, [entry["loss"] for entry in losses])
    loss_axis.set(xlabel="step", ylabel="loss (train_log.jsonl)", title="training loss")
    loss_axis.grid(True, alpha=0.3)
    for key, label in (("cuhk03_val_rank1", "CUHK03 val rank-1"), ("lfw_fold7_accuracy", "LFW fold 7 accuracy"),
                       ("conreid_rank1", "Con-ReID rank-1")):  # fmt: skip
        shown = [point for point in points if key in point]
        if shown:
            dev_axis.plot([p["step"] for p in shown], [100 * p[key] for p in shown], marker="o", label=label)
    dev_axis.set(xlabel="step", ylabel="%", title="development checks")
    dev_axis.grid(True, alpha=0.3)
    dev_axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args()
    table = args.table or args.run / "learning_curve.json"
    points = json.loads(table.read_text()) if table.is_file() else []
    done = {point["step"] for point in points}
    checkpoints = sorted((args.run / "checkpoints").glob("step_*"))
    for checkpoint in checkpoints:
        if not (checkpoint / "COMPLETE").is_file():
            continue
        step = int(checkpoint.name.split("_")[1])
        if step in done or step % args.every:
            continue
        figures = score_checkpoint(checkpoint, args.identities, tuple(args.checks), args.keypoint_cache or args.run / "dev_keypoints", args.batch_size)
        points.append({"step": step, **figures})
        points.sort(key=lambda point: point["step"])
        table.write_text(json.dumps(points, indent=1) + "\n")
        print(step, {key: round(100 * value, 1) for key, value in figures.items()}, flush=True)
    log = args.run / "train_log.jsonl"
    losses = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    if args.plot is not None and (points or losses):
        plot(points, losses, args.plot)
        print(f"wrote {args.plot}")
    if losses:
        print("loss: first", round(float(np.mean([e["loss"] for e in losses[:4]])), 3), "last", round(losses[-1]["loss"], 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
