"""Copy a trained model folder into pretrained/<name> with float16 weights (loaded back as float32).

    .venv/bin/python scripts/export_shipped_model.py outputs/sapiensid_small/final_model pretrained/sapiensid-small

The folder keeps everything `save_pretrained` writes (config with its `training` record, processor config,
the flat code files for `trust_remote_code`); only model.safetensors changes, to float16, which halves
the size. The config's dtype stays float32, so `from_pretrained` computes in float32 as the tests and
the development checks do. Measure the float16 copy with the development checks before shipping it
(docs/training.md: the figures may move by < 0.5 points).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from safetensors.torch import load_file

from sapiensid_hf.training.export import save_float16_weights

WEIGHTS = "model.safetensors"


def export(source: Path, target: Path) -> Path:
    if not (source / WEIGHTS).is_file() or not (source / "config.json").is_file():
        raise SystemExit(f"{source}: not a saved model folder (needs config.json and {WEIGHTS})")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    save_float16_weights(source / WEIGHTS, target / WEIGHTS)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a trained model folder (e.g. OUTPUT_DIR/final_model)")
    parser.add_argument("target", type=Path, help="where the shipped copy goes (e.g. pretrained/sapiensid-small)")
    args = parser.parse_args()
    target = export(args.source, args.target)
    size = (target / WEIGHTS).stat().st_size / 1e6
    float32 = sum(t.numel() for t in load_file(str(target / WEIGHTS)).values()) * 4 / 1e6
    print(f"wrote {target} ({size:.1f} MB float16 weights; {float32:.1f} MB as float32)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
