"""Average the weights of model folders from one run (e.g. the ends of two cosine cycles) into a new folder.

    .venv/bin/python scripts/average_model_weights.py outputs/v3_step10000_model outputs/v3_step16000_model \
        --output outputs/v3_avg_10000_16000_model

The shipped sapiensid-small is such a mean (docs/training.md, "Weight averaging"). Score the result with
`sapiensid evaluate --benchmark public-dev` before shipping it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="two or more model folders of the same architecture")
    parser.add_argument("--output", type=Path, required=True, help="the new model folder")
    args = parser.parse_args()
    from sapiensid_hf.training.export import average_model_folders

    try:
        output = average_model_folders(args.models, args.output)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {output}: the mean of {len(args.models)} models' weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
