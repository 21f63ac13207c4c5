"""The photo index's rows file: read back exactly, a batch at a time, and refused whole when damaged."""

from __future__ import annotations

import dataclasses

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sapiensid_hf.photo_index import PhotoIndexError, store
from sapiensid_hf.photo_index.store import (
    Manifest,
    Rows,
    current_version,
    read_manifest,
    read_rows,
    write_version,
)

DIMENSION = 8


def written_index(folder, count: int = 10) -> tuple[Rows, Manifest]:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(count, DIMENSION)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    rows = Rows(
        [f"album/photo_{i}.jpg" for i in range(count)], [f"{i:064x}" for i in range(count)],
        np.arange(count, dtype=np.int64) % 3 - 1, rng.uniform(0, 500, (count, 4)).astype(np.float32),
        rng.random(count) < 0.7, rng.random(count) < 0.5, embeddings,
    )  # fmt: skip
    manifest = Manifest("m", "fingerprint", True, DIMENSION, "Flat", True, count)
    index = faiss.IndexFlatIP(DIMENSION)
    index.add(embeddings)
    folder.mkdir()
    write_version(folder, manifest, rows, index)
    return rows, manifest


@pytest.mark.parametrize("batch_rows", [3, 10, 32_768])  # batches that split the rows unevenly, exactly, not at all
def test_rows_read_back_exactly_whatever_the_batch(tmp_path, monkeypatch, batch_rows):
    monkeypatch.setattr(store, "READ_BATCH_ROWS", batch_rows)
    rows, manifest = written_index(tmp_path / "album.sidx")
    version = current_version(tmp_path / "album.sidx")
    back = read_rows(version, read_manifest(version))
    assert back.paths == rows.paths and back.content_hashes == rows.content_hashes
    for field in ("person_index", "boxes", "person_found", "face_found", "embeddings"):
        mine, theirs = getattr(back, field), getattr(rows, field)
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), field
    assert back.embeddings.flags["C_CONTIGUOUS"] and back.embeddings.shape == (10, DIMENSION)


def test_an_empty_index_reads_as_no_rows(tmp_path):
    written_index(tmp_path / "empty.sidx", count=0)
    version = current_version(tmp_path / "empty.sidx")
    back = read_rows(version, read_manifest(version))
    assert len(back) == 0 and back.embeddings.shape == (0, DIMENSION)


def rewrite_column(version, name: str, column: pa.Array) -> None:
    table = pq.read_table(version / store.ROWS)
    pq.write_table(table.set_column(table.schema.get_field_index(name), name, column), version / store.ROWS)


def test_a_damaged_rows_file_is_refused_naming_it(tmp_path):
    rows, manifest = written_index(tmp_path / "album.sidx")
    version = current_version(tmp_path / "album.sidx")
    # Embeddings of another width than the manifest's.
    narrow = pa.FixedSizeListArray.from_arrays(pa.array(rows.embeddings[:, :4].reshape(-1)), 4)
    rewrite_column(version, "embedding", narrow)
    with pytest.raises(PhotoIndexError, match=r"rows.parquet: the embedding column holds 4 values a row .*, not 8; the index is damaged"):
        read_rows(version, manifest)
    # A row without an embedding: refused, not read as zeros.
    values = [list(map(float, row)) for row in rows.embeddings]
    values[4] = None
    rewrite_column(version, "embedding", pa.array(values, type=pa.list_(pa.float32())))
    with pytest.raises(PhotoIndexError, match="some missing: True"):
        read_rows(version, manifest)
    # Fewer rows than the manifest says; and a file that is not parquet.
    with pytest.raises(PhotoIndexError, match="11 rows; the index is damaged|10 rows, the manifest says 11"):
        read_rows(version, dataclasses.replace(manifest, rows=11))
    (version / store.ROWS).write_bytes(b"not parquet")
    with pytest.raises(PhotoIndexError, match="rows.parquet: cannot be read"):
        read_rows(version, manifest)
