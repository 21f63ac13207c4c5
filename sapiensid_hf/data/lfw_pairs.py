"""LFW-style `pairs.txt` (View 1 and View 2) and the verification dataset of an image folder with it.

Format (Huang et al., LFW technical report, "pairs.txt"):

- header: `<folds>\t<n>` (View 2, e.g. `10\t300`) or just `<n>` (View 1, `pairsDevTrain.txt`: one fold);
- then for each fold, `n` same-person lines `name<TAB>i<TAB>j` followed by `n` different-person lines
  `name1<TAB>i<TAB>name2<TAB>j`, image numbers 1-based: `<root>/<name>/<name>_<iiii>.jpg`.

Fields may be separated by tabs or spaces. Any malformed line raises `DatasetLayoutError` with its
line number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import datasets

from .common import DatasetLayoutError, features_with, record, records_to_dataset, require_dir, require_file


@dataclass(frozen=True)
class FacePair:
    """One pair of pairs.txt: its fold (0-based), the two (name, 1-based number) images, same person or not."""

    fold: int
    name_a: str
    number_a: int
    name_b: str
    number_b: int
    same: bool

    def relative_paths(self, suffix: str = ".jpg") -> tuple[str, str]:
        return (
            f"{self.name_a}/{self.name_a}_{self.number_a:04d}{suffix}",
            f"{self.name_b}/{self.name_b}_{self.number_b:04d}{suffix}",
        )


def read_lfw_pairs(path: str | os.PathLike) -> list[FacePair]:
    """Every pair of an LFW-style pairs file, in file order, with its fold."""
    path = require_file(Path(path), "LFW pairs file")
    lines = [(number, line.split()) for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
    lines = [(number, fields) for number, fields in lines if fields]
    if not lines:
        raise DatasetLayoutError(f"{path}: the pairs file is empty")
    header_number, header = lines[0]
    try:
        counts = [int(field) for field in header]
    except ValueError:
        raise DatasetLayoutError(f"{path}, line {header_number}: header {' '.join(header)!r} is not '<folds> <n>' or '<n>'") from None
    if len(counts) == 1:
        folds, per_kind = 1, counts[0]
    elif len(counts) == 2:
        folds, per_kind = counts
    else:
        raise DatasetLayoutError(f"{path}, line {header_number}: header has {len(counts)} numbers, expected 1 or 2")
    if folds < 1 or per_kind < 1:
        raise DatasetLayoutError(f"{path}, line {header_number}: folds and pairs per fold must be positive")
    body = lines[1:]
    expected = folds * 2 * per_kind
    if len(body) != expected:
        raise DatasetLayoutError(
            f"{path}: the header promises {folds} fold(s) x (2 x {per_kind}) = {expected} pairs, the file has {len(body)}"
        )
    pairs = []
    for index, (number, fields) in enumerate(body):
        fold, within = divmod(index, 2 * per_kind)
        same = within < per_kind
        pairs.append(_parse_pair(fields, same, fold, path, number))
    return pairs


def _parse_pair(fields: list[str], same: bool, fold: int, path: Path, number: int) -> FacePair:
    kind = "same-person (name i j)" if same else "different-person (name1 i name2 j)"
    if len(fields) != (3 if same else 4):
        raise DatasetLayoutError(
            f"{path}, line {number}: expected a {kind} line, got {len(fields)} fields: {' '.join(fields)!r}"
        )
    try:
        if same:
            name_a = name_b = fields[0]
            number_a, number_b = int(fields[1]), int(fields[2])
        else:
            name_a, number_a, name_b, number_b = fields[0], int(fields[1]), fields[2], int(fields[3])
    except ValueError:
        raise DatasetLayoutError(f"{path}, line {number}: image numbers must be integers in {' '.join(fields)!r}") from None
    if number_a < 1 or number_b < 1:
        raise DatasetLayoutError(f"{path}, line {number}: image numbers start at 1")
    return FacePair(fold, name_a, number_a, name_b, number_b, same)


def load_lfw_pairs(
    root: str | os.PathLike,
    pairs_file: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """The verification dataset of an LFW-layout image folder and its pairs file.

    Two rows per pair, in pair order (row 2k = the pair's first image, 2k + 1 = its second), role
    "pair", plus `pair_index`, `is_same` and `fold` columns: the layout of `load_verification_bin`, so
    the evaluation runner's verification protocol reads it. `pid` numbers the names in sorted order.

    Args:
        root: the folder holding `<name>/<name>_<iiii>.jpg`.
        pairs_file: pairs.txt (View 1 or View 2); relative paths start from `root`.
    """
    root = require_dir(Path(root), "LFW image folder")
    pairs_path = Path(pairs_file) if Path(pairs_file).is_absolute() else root / pairs_file
    if not pairs_path.is_file() and Path(pairs_file).is_file():
        pairs_path = Path(pairs_file)
    pairs = read_lfw_pairs(pairs_path)
    names = sorted({name for pair in pairs for name in (pair.name_a, pair.name_b)})
    pids = {name: pid for pid, name in enumerate(names)}
    records = []
    for pair in pairs:
        for name, relative in zip((pair.name_a, pair.name_b), pair.relative_paths(), strict=True):
            image = root / relative
            if not image.is_file():
                raise DatasetLayoutError(f"{pairs_path}: the pair's image {image} does not exist")
            records.append(
                record(
                    str(image.resolve()),
                    relative,
                    pids[name],
                    role="pair",
                    pair_index=len(records) // 2,
                    is_same=pair.same,
                    fold=pair.fold,
                )
            )
    features = features_with(
        pair_index=datasets.Value("int64"), is_same=datasets.Value("bool"), fold=datasets.Value("int64")
    )
    return records_to_dataset(records, features, cache_dir)


__all__ = ["FacePair", "load_lfw_pairs", "read_lfw_pairs"]
