"""Score another model's embeddings on the public development checks with this project's own scoring code.

    python scripts/score_external_embeddings.py --identities ../shared/data/identities \
        --check conreid --embeddings peer_conreid.npy [--paths peer_conreid.paths.txt] [--list-only LIST.txt]

A peer model (e.g. the OSNet recipe of ../shared/peers/osnet, `embed.py`) writes one L2-normalised row
per image and a paths file, one image per line, in the same order. This script lists the images a check
needs (`--list-only`: write them, relative to the check's root, for the peer to embed), then scores the
rows with `public_dev.score_dev_set`, exactly the code `sapiensid evaluate --benchmark public-dev` uses
(CUHK03-val both directions, Con-ReID query -> gallery under the Market-1501 rule), so the peer's and
the project's figures are comparable. Every image of the check must have a row: a missing one is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from sapiensid_hf.evaluation.public_dev import load_dev_sets, score_dev_set

CHECK_ROOTS = {"cuhk03_val": ".", "conreid": "conreid"}


def image_list(identities: Path, check: str) -> list[str]:
    """The check's images, relative to `identities / CHECK_ROOTS[check]`, in the check's row order."""
    dev = load_dev_sets(identities, (check,))[check]
    return list(dev.dataset["path"])


def score(identities: Path, check: str, embeddings_file: Path, paths_file: Path) -> dict:
    dev = load_dev_sets(identities, (check,))[check]
    embeddings = np.load(embeddings_file, allow_pickle=False)
    names = [line.rstrip("\n") for line in paths_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != len(embeddings):
        raise SystemExit(f"{paths_file}: {len(names)} paths for {len(embeddings)} rows in {embeddings_file}")
    row_of = {name: index for index, name in enumerate(names)}
    wanted = image_list(identities, check)
    missing = [name for name in wanted if name not in row_of]
    if missing:
        raise SystemExit(f"{embeddings_file}: no row for {len(missing)} image(s) of {check}, e.g. {missing[0]}")
    ordered = embeddings[[row_of[name] for name in wanted]].astype(np.float32)
    ordered /= np.linalg.norm(ordered, axis=1, keepdims=True).clip(min=1e-12)
    results = score_dev_set(dev, ordered)
    return {direction: {k: v for k, v in values.items() if not k.startswith("_") and k != "cmc"}
            for direction, values in results.items()}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--identities", type=Path, required=True)
    parser.add_argument("--check", choices=sorted(CHECK_ROOTS), required=True)
    parser.add_argument("--embeddings", type=Path, help="(N, D) .npy of the peer")
    parser.add_argument("--paths", type=Path, help="its paths file (default: EMBEDDINGS with .paths.txt)")
    parser.add_argument("--list-only", type=Path, help="write the check's image list here and stop")
    args = parser.parse_args()
    if args.list_only:
        names = image_list(args.identities, args.check)
        args.list_only.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
        print(f"wrote {len(names)} image paths (relative to {args.identities / CHECK_ROOTS[args.check]}) to {args.list_only}")
        return 0
    if args.embeddings is None:
        parser.error("--embeddings is needed unless --list-only")
    paths = args.paths or args.embeddings.with_suffix(".paths.txt")
    print(json.dumps(score(args.identities, args.check, args.embeddings, paths), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
