"""A manifest (CSV or Parquet) of your own images: the form to keep a private or mixed dataset in.

Columns (header names, any order):

| column | required | meaning |
| --- | --- | --- |
| `path` | yes | image file, relative to `root` (default: the manifest's folder) or absolute |
| `identity` | yes | any non-empty string naming the person |
| `camera` | no | integer camera index (-1 = unknown) -> `camid` |
| `clothes` | no | any string naming the outfit (cloth-changing protocols) -> `clothes_id` |
| `split` or `role` | no | e.g. train / val / query / gallery -> `role` (one of the two, not both) |
| `source` | no | where the row comes from (kept as a column, e.g. for per-source sampling) |

`load_unlabelled_manifest` reads a manifest of photos without identities (only `path` is required, other
columns are ignored): material for distillation, never identity classes; its rows get `pid` -1.

Identities are numbered `pid` = 0..N-1 in sorted order of the identity strings over the whole
manifest (before any split is selected), so a person keeps its pid whichever splits are loaded; the
string stays in the `identity` column. Outfits get a global `clothes_id` in sorted order of
(identity, clothes) pairs. A bad row (missing file, empty identity, duplicate path, non-integer camera) or
an unknown column raises `DatasetLayoutError` naming the manifest line and the file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets

from .common import DatasetLayoutError, features_with, record, records_to_dataset, require_file

REQUIRED_COLUMNS = ("path", "identity")
OPTIONAL_COLUMNS = ("camera", "clothes", "split", "role", "source")


def load_manifest(
    manifest: str | os.PathLike,
    root: str | os.PathLike | None = None,
    splits: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """The images a manifest lists, with the standard columns plus `identity` and `source`.

    Args:
        manifest: a .csv (UTF-8, header row) or .parquet file with the columns in the module docstring.
        root: folder the relative paths start from; default: the manifest's folder.
        splits: keep only rows whose split / role is one of these (default: every row).
        cache_dir: `datasets` cache folder (default: the library default).
    """
    manifest = require_file(Path(manifest), "manifest")
    root = Path(root) if root is not None else manifest.parent
    rows = _read_rows(manifest)
    role_column = _role_column(rows[0].keys(), manifest)
    identities = sorted({_identity(row, line, manifest) for line, row in _numbered(rows)})
    pids = {identity: pid for pid, identity in enumerate(identities)}
    clothes_keys = sorted({(row["identity"].strip(), str(row["clothes"]).strip()) for row in rows if row.get("clothes")})
    clothes_ids = _clothes_numbers(clothes_keys)
    if splits is not None:
        known = sorted({str(row.get(role_column) or "") for row in rows}) if role_column else []
        unknown = sorted(set(splits) - set(known))
        if unknown:
            raise DatasetLayoutError(
                f"{manifest}: split(s) {', '.join(unknown)} not in the manifest (it has: {', '.join(known) or 'no split column'})"
            )
    records, seen = [], {}
    for line, row in _numbered(rows):
        role = str(row.get(role_column) or "").strip() if role_column else ""
        if splits is not None and role not in splits:
            continue
        relative, image = _listed_image(row, line, manifest, root, seen)
        identity = row["identity"].strip()
        clothes = str(row.get("clothes") or "").strip()
        records.append(
            record(
                str(image.resolve()),
                relative,
                pids[identity],
                _camera(row.get("camera"), line, manifest, image),
                clothes_ids.get((identity, clothes), -1),
                role,
                identity=identity,
                source=str(row.get("source") or "").strip(),
            )
        )
    if not records:
        raise DatasetLayoutError(f"{manifest}: no rows selected (splits={list(splits or [])})")
    features = features_with(identity=datasets.Value("string"), source=datasets.Value("string"))
    return records_to_dataset(records, features, cache_dir)


UNLABELLED_ROLE = "unlabelled"


def load_unlabelled_manifest(
    manifest: str | os.PathLike, root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> datasets.Dataset:
    """Photos without identities (a `path` column; other columns ignored), `pid` -1 and role "unlabelled".

    A missing file, an empty path or a path listed twice raises `DatasetLayoutError` with the manifest line.
    """
    manifest = require_file(Path(manifest), "manifest")
    root = Path(root) if root is not None else manifest.parent
    records, seen = [], {}
    for line, row in _numbered(_read_rows(manifest, required=("path",), optional=None)):
        relative, image = _listed_image(row, line, manifest, root, seen)
        records.append(record(str(image.resolve()), relative, -1, role=UNLABELLED_ROLE))
    return records_to_dataset(records, features_with(), cache_dir)


def _listed_image(row: dict[str, Any], line: int, manifest: Path, root: Path, seen: dict[str, int]) -> tuple[str, Path]:
    """(the row's path as listed, the image file), refusing an empty path, a path listed twice (recorded in
    `seen`) and a missing file, with the manifest line."""
    relative = str(row["path"] or "").strip()
    if not relative:
        raise DatasetLayoutError(f"{manifest}, line {line}: empty path")
    if relative in seen:
        raise DatasetLayoutError(f"{manifest}, line {line}: {relative} is listed twice (also on line {seen[relative]})")
    seen[relative] = line
    image = Path(relative) if Path(relative).is_absolute() else root / relative
    if not image.is_file():
        raise DatasetLayoutError(f"{manifest}, line {line}: the image {image} does not exist")
    return relative, image


def _read_rows(
    manifest: Path, required: Sequence[str] = REQUIRED_COLUMNS, optional: Sequence[str] | None = OPTIONAL_COLUMNS
) -> list[dict[str, Any]]:
    """The manifest's rows; `optional` None accepts any other column."""
    suffix = manifest.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as parquet

        try:
            table = parquet.read_table(manifest)
        except Exception as error:  # pyarrow raises several types for a bad file
            raise DatasetLayoutError(f"{manifest}: not a readable Parquet file ({error})") from error
        columns = table.column_names
        rows = table.to_pylist()
    elif suffix in (".csv", ".tsv", ".txt"):
        try:
            with manifest.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                columns = list(reader.fieldnames or [])
                rows = list(reader)
        except (UnicodeDecodeError, csv.Error) as error:
            raise DatasetLayoutError(f"{manifest}: not a readable UTF-8 CSV file ({error})") from error
    else:
        raise DatasetLayoutError(f"{manifest}: a manifest must be .csv, .tsv or .parquet, got {suffix or 'no suffix'}")
    missing = [name for name in required if name not in columns]
    unknown = [] if optional is None else [name for name in columns if name not in (*required, *optional)]
    if missing or unknown:
        problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        )
        raise DatasetLayoutError(
            f"{manifest}: {'; '.join(problems)} (columns: {', '.join((*required, *(optional or ())))})"
        )
    if not rows:
        raise DatasetLayoutError(f"{manifest}: the manifest has no rows")
    for row in rows:
        if None in row:  # csv.DictReader puts extra fields under the key None
            raise DatasetLayoutError(f"{manifest}: a row has more fields than the header ({row[None]})")
    return rows


def _numbered(rows: list[dict[str, Any]]):
    # Line numbers as a text editor shows them: the header is line 1.
    return ((index + 2, row) for index, row in enumerate(rows))


def _role_column(columns: Any, manifest: Path) -> str | None:
    present = [name for name in ("split", "role") if name in columns]
    if len(present) == 2:
        raise DatasetLayoutError(f"{manifest}: give a 'split' or a 'role' column, not both")
    return present[0] if present else None


def _identity(row: dict[str, Any], line: int, manifest: Path) -> str:
    identity = row.get("identity")
    if identity is None or not str(identity).strip():
        raise DatasetLayoutError(f"{manifest}, line {line}: empty identity for {row.get('path')!r}")
    row["identity"] = str(identity)
    return str(identity).strip()


def _camera(value: Any, line: int, manifest: Path, image: Path) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return -1
    try:
        camera = int(str(value).strip())
    except ValueError:
        raise DatasetLayoutError(f"{manifest}, line {line} ({image}): camera {value!r} is not an integer") from None
    if camera < -1:
        raise DatasetLayoutError(f"{manifest}, line {line} ({image}): camera {camera} is negative (-1 = unknown)")
    return camera


def _clothes_numbers(keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    # Global numbers: two people's outfits never share a clothes_id.
    return {key: number for number, key in enumerate(keys)}


__all__ = ["load_manifest"]
