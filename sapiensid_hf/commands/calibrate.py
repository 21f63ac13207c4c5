"""`sapiensid calibrate`: a model folder's verification thresholds, chosen on the development pairs and
recorded in its config.json (sapiensid_hf.evaluation.runner.calibrate_model_folder)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CommandError


def run(args: argparse.Namespace) -> int:
    from ..evaluation.runner import calibrate_model_folder

    model_dir = Path(args.model_dir).expanduser()
    if not model_dir.is_dir():
        raise CommandError(f"{model_dir}: no such folder (calibrate records the thresholds in a saved model folder's config.json)")
    if not (model_dir / "config.json").is_file():
        raise CommandError(f"{model_dir}: not a saved model folder (no config.json)")
    print(f"model: {model_dir}", file=sys.stderr)
    record = calibrate_model_folder(
        model_dir, args.dataset_root, args.output_dir, keypoint_cache_dir=args.keypoint_cache,
        batch_size=args.batch_size, device=args.device, num_workers=args.num_workers,
    )  # fmt: skip
    print("| kind | pairs (same) | best-accuracy threshold | accuracy there | FAR 1e-2 threshold | TAR there |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in ("face", "body"):
        entry = record[kind]
        print(
            f"| {kind} ({entry['pairs_from']}) | {entry['pairs']} ({entry['same_pairs']}) | {entry['best_accuracy']:.4f} "
            f"| {100 * entry['accuracy_at_best']:.1f} % ({entry['accuracy']}) | {entry['far_1e-2']:.4f} "
            f"| {100 * entry['tar_at_far_1e-2']:.1f} % |"
        )
    for kind in ("face", "body"):
        if "far_from" in record[kind]:  # faces: 300 different-person pairs are too few; bodies: one camera's pairs count too
            print(f"{kind}: FAR 1e-2 threshold chosen on {record[kind]['far_from']}, TAR on its same-person pairs")
    print(f"recorded in {model_dir / 'config.json'} (compare uses best accuracy: faces when both pictures show one)")
    return 0
