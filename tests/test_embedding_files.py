"""`sapiensid embed` output files: replaced whole or not at all, and a set of .npy files from two writes refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sapiensid_hf.commands import embedding_files
from sapiensid_hf.commands.common import CommandError
from sapiensid_hf.commands.embedding_files import paths_file, read_embeddings, write_embeddings
from sapiensid_hf.inference import EmbeddingResult


def result_of(count: int, seed: int) -> EmbeddingResult:
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(count, 8)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return EmbeddingResult(
        embeddings, np.full((count, 19, 2), -1, np.float32), np.full((count, 2, 4), -1, np.float32),
        np.ones(count, bool), np.zeros(count, bool), np.full((count, 4), -1, np.float32), np.ones(count, np.int64),
        np.zeros(count, bool),
    )  # fmt: skip


def write(path: Path, count: int, seed: int) -> None:
    write_embeddings(path, [Path(f"/photos/{seed}_{i}.jpg") for i in range(count)], result_of(count, seed), "m", True, "f")


@pytest.mark.parametrize("name", ["gallery.npy", "gallery.parquet"])
def test_a_write_that_fails_midway_leaves_the_previous_file_whole(tmp_path, monkeypatch, name):
    path = tmp_path / name
    write(path, 3, seed=0)
    before = read_embeddings(path)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(embedding_files.np, "save", killed)
    monkeypatch.setattr("pyarrow.parquet.write_table", killed)
    with pytest.raises(KeyboardInterrupt):
        write(path, 5, seed=1)
    after = read_embeddings(path)
    assert after.names == before.names and np.array_equal(after.embeddings, before.embeddings)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_npy_files_from_two_writes_are_refused_not_paired(tmp_path):
    path = tmp_path / "gallery.npy"
    write(path, 3, seed=0)
    old_listing = paths_file(path).read_text()
    write(path, 3, seed=1)
    paths_file(path).write_text(old_listing)  # as if the second write had been killed after the .npy
    with pytest.raises(CommandError, match="gallery.paths.txt is not the file gallery.meta.json was written with"):
        read_embeddings(path)
