"""Files replaced whole or not at all (sapiensid_hf/atomic_files.py), for every writer that uses them."""

import json
import os
import stat

import numpy as np
import pytest

from sapiensid_hf.atomic_files import (
    save_npz_atomically,
    write_atomically,
    write_json_atomically,
    write_text_atomically,
)
from sapiensid_hf.evaluation.calibration import record_calibration


def test_a_write_killed_midway_leaves_the_previous_file_whole_and_no_temporary_file(tmp_path):
    target = tmp_path / "embeddings.npz"
    save_npz_atomically(target, values=np.arange(4))

    def killed(temporary):
        with open(temporary, "wb") as handle:
            handle.write(b"half a file")
        raise KeyboardInterrupt("killed while writing")

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, killed)
    with np.load(target) as kept:
        np.testing.assert_array_equal(kept["values"], np.arange(4))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["embeddings.npz"]


def test_npz_arrays_land_at_the_asked_name_even_without_its_suffix_being_added_twice(tmp_path):
    target = tmp_path / "chunks" / "chunk_0000000000.npz"  # the folder is made
    save_npz_atomically(target, pixels=np.ones((2, 3), np.uint8), sizes=np.array([[3, 2]]))
    shouted = save_npz_atomically(tmp_path / "chunks" / "CHUNK.NPZ", pixels=np.zeros(2))  # numpy adds ".npz" to this name
    assert sorted(path.name for path in target.parent.iterdir()) == ["CHUNK.NPZ", "chunk_0000000000.npz"]
    assert shouted.stat().st_size > 0
    with np.load(target) as saved:
        assert saved["pixels"].shape == (2, 3) and saved["sizes"].tolist() == [[3, 2]]


def test_a_new_file_gets_the_permissions_of_a_plain_open_and_a_replaced_one_keeps_its_own(tmp_path):
    umask = os.umask(0o022)
    try:
        fresh = write_text_atomically(tmp_path / "README.md", "card\n")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's owner-only 0o600
        kept = tmp_path / "config.json"
        kept.write_text("{}\n")
        kept.chmod(0o640)
        write_json_atomically(kept, {"a": 1})
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and json.loads(kept.read_text()) == {"a": 1}
    finally:
        os.umask(umask)


def test_recording_a_calibration_killed_midway_keeps_the_previous_config(tmp_path, monkeypatch):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "sapiensid", "calibration": {"default": "old"}}) + "\n")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr("sapiensid_hf.atomic_files.json.dumps", killed)
    with pytest.raises(KeyboardInterrupt):
        record_calibration(tmp_path, {"default": "new"})
    assert json.loads(config.read_text())["calibration"] == {"default": "old"}
    assert [path.name for path in tmp_path.iterdir()] == ["config.json"]
