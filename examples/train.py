"""Train SapiensID (masked recognition model + AdaFace) on your own identity dataset.

    accelerate launch examples/train.py --config examples/configs/base.yaml
    accelerate launch --num_processes 2 --cpu examples/train.py --config examples/configs/tiny_cpu.yaml
    python examples/train.py --config my.yaml --set optimizer.lr=3e-4 --set schedule.max_steps=20000
    python examples/train.py --config my.yaml --resume_from_checkpoint latest
    python examples/train.py --config my.yaml --push_to_hub me/sapiensid-mine   # upload final_model/ at the end

The config is a YAML / JSON file of sapiensid_hf.training.TrainingConfig (see examples/configs/base.yaml
for every field with its meaning). The run writes OUTPUT_DIR/config.json, checkpoints/step_XXXXXXXX/,
logs/ (TensorBoard), validation.jsonl and final_model/ (load it with
AutoModel.from_pretrained(OUTPUT_DIR/final_model, trust_remote_code=True)).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sapiensid_hf.data.common import DatasetLayoutError
from sapiensid_hf.keypoint_cache import KeypointCacheMismatchError
from sapiensid_hf.training import (
    ConfigError,
    TrainingConfig,
    TrainingDataError,
    TrainingDivergedError,
    TrainingInterrupted,
    train,
)
from sapiensid_hf.training.launch import relaunch_cpu_processes
from sapiensid_hf.training.stop_signals import StopSignals


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML or JSON training config")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config field (repeatable), e.g. --set optimizer.lr=3e-4",
    )
    parser.add_argument("--output_dir", help="shortcut for --set logging.output_dir=...")
    parser.add_argument(
        "--resume_from_checkpoint",
        help='"latest" (newest complete checkpoint of the output dir; starts fresh if there is none) or a checkpoint folder',
    )
    parser.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="start afresh in an output dir that holds another run, deleting its checkpoints, logs and final model",
    )
    parser.add_argument(
        "--push_to_hub",
        metavar="REPO_ID",
        help="at the end, upload final_model/ (model files and a model card, never checkpoints or logs) to this Hub repository",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    is_main = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(
        level=logging.INFO if is_main else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # `accelerate launch --cpu --num_processes N` starts one process without mpirun; start the N here.
    relaunched = relaunch_cpu_processes(__file__, sys.argv[1:] if argv is None else argv)
    if relaunched is not None:
        return relaunched
    # SIGTERM (a scheduler, `kill`) ends the run like Ctrl-C: one line saying where to resume, no traceback.
    # Only the first stop signal acts: the later ones a launcher or a terminal sends are recorded, never
    # raised, also not during interpreter shutdown.
    stop_signals = StopSignals().install()
    try:
        return _run(args, is_main)
    finally:
        stop_signals.run_ended()


def _run(args: argparse.Namespace, is_main: bool) -> int:
    overrides = list(args.overrides) + ([f"logging.output_dir={args.output_dir}"] if args.output_dir else [])
    try:
        config = TrainingConfig.from_file(args.config).with_overrides(overrides)
        result = train(
            config, resume_from_checkpoint=args.resume_from_checkpoint, overwrite_output_dir=args.overwrite_output_dir
        )
    except (
        ConfigError, TrainingDataError, TrainingDivergedError, DatasetLayoutError, KeypointCacheMismatchError,
        FileNotFoundError,
    ) as error:  # fmt: skip
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as interrupted:
        if is_main:
            print(interrupted, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if is_main:
            print("interrupted before training started; nothing to resume", file=sys.stderr)
        return 130
    if is_main:
        limit = f" of {config.schedule.max_steps} (schedule.max_time_s reached)" if result.stopped_by_time_limit else ""
        print(f"trained {result.steps} steps{limit}; model saved to {result.final_model_dir}")
        if result.validation:
            print("validation:", {k: round(v, 4) for k, v in result.validation[-1].items()})
        if result.skipped_samples:
            print(f"{result.skipped_samples} unreadable samples were skipped (see the log)")
        if args.push_to_hub:
            return _push(result.final_model_dir, args.push_to_hub)
    return 0


def _push(final_model_dir, repo_id: str) -> int:
    from sapiensid_hf.hub_push import push_model_folder

    try:
        plan = push_model_folder(final_model_dir, repo_id)
    except (ValueError, OSError) as error:
        print(f"error: the model is saved in {final_model_dir}, but the upload to {repo_id} failed: {error}", file=sys.stderr)
        print(f"retry with: sapiensid push {final_model_dir} {repo_id}", file=sys.stderr)
        return 1
    print(f"uploaded {len(plan.files)} files of {final_model_dir} to {repo_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
