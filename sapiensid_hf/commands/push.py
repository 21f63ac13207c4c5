"""`sapiensid push`: upload a model folder's files to the Hub (sapiensid_hf.hub_push.push_model_folder)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import CommandError


def run(args: argparse.Namespace) -> int:
    from ..hub_push import push_model_folder

    results = None
    if args.results is not None:
        path = Path(args.results).expanduser()
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise CommandError(f"{path}: cannot read the development results ({error})") from None
    plan = push_model_folder(
        Path(args.model_dir).expanduser(), args.repo_id, dry_run=args.dry_run, results=results, private=args.private
    )
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {len(plan.files)} files of {plan.folder} to {plan.repo_id} (model card: {plan.card}):")
    for name in plan.files:
        print(f"  {name}")
    if args.dry_run:
        print("dry run: nothing was uploaded", file=sys.stderr)
    return 0
