"""Score model folders or training checkpoints on the fixed development subset (tests/fixtures/dev_subset.json):
the figures of the learning-curve tables in docs/training.md, comparable across runs at equal steps.

    .venv/bin/python scripts/score_dev_subset.py outputs/sapiensid_small_distill/checkpoints/step_00000500 ... \
        --identities ../shared/data/identities

A checkpoint is exported to a temporary model folder first (the AdaFace head and the teacher projection
dropped). One line per argument: its name, CUHK03-val subset rank-1 and LFW subset accuracy (%).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "dev_subset.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model folders or checkpoint folders (step_XXXXXXXX)")
    parser.add_argument("--identities", type=Path, default=Path("../shared/data/identities"))
    args = parser.parse_args()
    from sapiensid_hf.evaluation.public_dev import score_dev_subset
    from sapiensid_hf.inference import load_processor
    from sapiensid_hf.modeling import SapiensIDModel
    from sapiensid_hf.training.export import export_checkpoint

    subset = json.loads(FIXTURE.read_text())
    for source in args.models:
        with tempfile.TemporaryDirectory() as folder:
            model_dir = source if (source / "config.json").is_file() else export_checkpoint(source, Path(folder) / "model")
            model = SapiensIDModel.from_pretrained(model_dir)
            scores = score_dev_subset(model, load_processor(model_dir, model.config), subset, args.identities)
        print(source, {key: round(100 * value, 1) for key, value in scores.items()}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
