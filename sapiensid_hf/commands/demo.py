"""`sapiensid demo`: serve the Gradio Space (sapiensid_hf/space) on this machine.

The same entry point runs a deployed Space: its `app.py` (spaces_app/app.py) calls `main`.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from sapiensid_cli.argument_types import positive_int, torch_device

from ..inference import MODEL_ENV_VAR, UNTRAINED_SOURCE, checked_model_source, load_pipeline
from ..space.page import DEFAULT_EXAMPLES_DIR, MAX_UPLOAD_SIZE, build_demo, launch_demo

logger = logging.getLogger("sapiensid_hf.space")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sapiensid demo", description="Run the SapiensID Gradio demo.")
    parser.add_argument(
        "--model",
        default=os.environ.get(MODEL_ENV_VAR),
        help=f"saved SapiensID folder or hub id (default: ${MODEL_ENV_VAR}, else the shipped sapiensid-small; "
        "'untrained' = a random tiny model)",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 exposes it to the network)",
    )
    parser.add_argument(
        "--port",
        type=positive_int,
        default=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None,
        help="port (default: $GRADIO_SERVER_PORT, else the first free one from 7860)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also open a public gradio.live link (off by default)"
    )
    parser.add_argument("--device", type=torch_device, default="cpu", help="torch device for the model (default: cpu)")
    parser.add_argument(
        "--examples-dir", type=Path, default=DEFAULT_EXAMPLES_DIR, help="folder of example photos (*.jpg)"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=1, help="model calls run at the same time (default: 1)"
    )
    parser.add_argument(
        "--max-file-size", default=MAX_UPLOAD_SIZE, help=f"upload limit (default: {MAX_UPLOAD_SIZE})"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """`sapiensid demo` and a deployed Space's `app.py` (spaces_app/app.py)."""
    args = parse_args(argv)
    model = args.model
    if model is not None and model != UNTRAINED_SOURCE:
        try:
            checked_model_source(model)
        except FileNotFoundError as error:
            raise SystemExit(f"sapiensid demo: --model {error}") from error
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.host not in LOOPBACK_HOSTS:
        logger.warning(
            "listening on %s: anyone who can reach this address can use the demo and upload photos of people "
            "(use --host 127.0.0.1 to keep it on this machine)",
            args.host,
        )
    pipeline = load_pipeline(args.model, device=args.device)
    demo = build_demo(pipeline, examples_dir=args.examples_dir, concurrency_limit=args.concurrency)
    try:
        launch_demo(demo, host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size)
    except OSError as error:  # Gradio's "Cannot find empty port" and bind failures
        where = f"port {args.port}" if args.port else "no free port from 7860"
        raise SystemExit(f"sapiensid demo: {where} on {args.host} could not be used ({error}); choose one with --port") from None
    return 0
