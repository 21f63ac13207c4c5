"""Face data loaders: identity folders, insightface RecordIO written byte by byte, verification .bin."""

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sapiensid_hf.data import (
    DatasetLayoutError,
    RecordIOReader,
    load_image_folder,
    load_recordio,
    load_verification_bin,
    read_verification_bin,
)

MAGIC = 0xCED7230A


def jpeg_bytes(value: int, size=(6, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buffer, format="JPEG")
    return buffer.getvalue()


# ---------------------------------------------------------------- identity folders


def test_image_folder_numbers_identities_in_sorted_order(tmp_path):
    root = tmp_path / "faces"
    for identity, count in (("m.0bob", 2), ("m.0alice", 1)):
        for i in range(count):
            (root / identity).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(root / identity / f"{i}.jpg")
    (root / "README.txt").write_text("not an identity")
    dataset = load_image_folder(root, cache_dir=tmp_path / "cache")
    got = sorted(
        zip(
            dataset["path"],
            dataset["pid"],
            dataset["identity"],
            dataset["role"],
            dataset["camid"],
            strict=True,
        )
    )
    assert got == [
        ("m.0alice/0.jpg", 0, "m.0alice", "train", -1),
        ("m.0bob/0.jpg", 1, "m.0bob", "train", -1),
        ("m.0bob/1.jpg", 1, "m.0bob", "train", -1),
    ]
    (root / "m.0empty").mkdir()
    with pytest.raises(
        DatasetLayoutError, match=r"1 identity folder\(s\) contain no images \(e.g. m.0empty\)"
    ):
        load_image_folder(root, cache_dir=tmp_path / "cache")


def test_image_folder_without_identity_folders(tmp_path):
    with pytest.raises(DatasetLayoutError, match="expected one sub-folder per identity"):
        load_image_folder(tmp_path)


# ---------------------------------------------------------------- RecordIO


def image_record(label, image: bytes) -> bytes:
    """MXNet IRHeader {uint32 flag; float label; uint64 id; uint64 id2} (+ flag float labels) + image."""
    if np.ndim(label) == 0:
        return struct.pack("<IfQQ", 0, float(label), 0, 0) + image
    label = np.asarray(label, np.float32)
    return struct.pack("<IfQQ", label.size, 0.0, 0, 0) + label.tobytes() + image


def write_part(handle, payload: bytes, cflag: int = 0) -> None:
    handle.write(struct.pack("<II", MAGIC, (cflag << 29) | len(payload)))
    handle.write(payload + b"\x00" * (-len(payload) % 4))


def write_insightface_rec(folder: Path, split_payload: bytes | None = None) -> tuple[Path, list[int]]:
    """Meta record 0 (images are keys 1..3), images of identities 7, 7, 9, then identity records."""
    pids = [7, 7, 9]
    records = {0: image_record([4.0, 6.0], b"")}
    for key, pid in enumerate(pids, start=1):
        records[key] = image_record(pid if key != 3 else [pid, 0.0], jpeg_bytes(40 * key))
    records[4] = image_record([1.0, 3.0], b"")
    records[5] = image_record([3.0, 4.0], b"")
    rec, idx = folder / "train.rec", folder / "train.idx"
    lines = []
    with open(rec, "wb") as handle:
        for key, payload in records.items():
            lines.append(f"{key}\t{handle.tell()}\n")
            write_part(handle, payload)
        if split_payload is not None:  # a record too big for one part: split where the magic occurs
            lines.append(f"6\t{handle.tell()}\n")
            parts = split_payload.split(struct.pack("<I", MAGIC))
            for i, part in enumerate(parts):
                write_part(handle, part, 1 if i == 0 else (3 if i == len(parts) - 1 else 2))
    idx.write_text("".join(lines))
    return rec, pids


def test_recordio_images_follow_the_meta_record(tmp_path):
    rec, pids = write_insightface_rec(tmp_path)
    dataset = load_recordio(rec, cache_dir=tmp_path / "cache")
    assert dataset["pid"] == pids
    assert dataset["path"] == ["train.rec#1", "train.rec#2", "train.rec#3"]
    assert set(dataset["role"]) == {"train"}
    image = dataset[1]["image"]
    assert image.size == (6, 6)
    assert abs(np.asarray(image).mean() - 80) < 3  # the JPEG written for key 2


def test_recordio_joins_split_records_with_the_magic_number(tmp_path):
    magic = struct.pack("<I", MAGIC)
    payload = b"head" + magic + b"middle part" + magic + b"tail!"
    rec, _ = write_insightface_rec(tmp_path, split_payload=payload)
    with RecordIOReader(rec) as reader:
        assert reader[6] == payload
        assert len(reader) == 7
        with pytest.raises(KeyError, match="no record with key 99"):
            reader[99]


def test_recordio_corrupt_files_are_named(tmp_path):
    rec, _ = write_insightface_rec(tmp_path)
    idx = rec.with_suffix(".idx")
    idx.write_text("0\t0\n1\t3\n")
    with (
        RecordIOReader(rec) as reader,
        pytest.raises(DatasetLayoutError, match=r"train.rec \(key 1\): no RecordIO magic number at byte 3"),
    ):
        reader[1]
    idx.write_text("0 0\n")
    with pytest.raises(DatasetLayoutError, match=r"train.idx:1: expected '<key>\\t<offset>'"):
        load_recordio(rec)
    idx.unlink()
    with pytest.raises(DatasetLayoutError, match=r"RecordIO index: expected the file .*train.idx"):
        load_recordio(rec)


def test_recordio_without_meta_record_uses_every_key(tmp_path):
    rec, idx = tmp_path / "faces.rec", tmp_path / "faces.idx"
    with open(rec, "wb") as handle:
        offsets = []
        for pid in (3, 1):
            offsets.append(handle.tell())
            write_part(handle, image_record(pid, jpeg_bytes(10)))
    idx.write_text("".join(f"{key}\t{offset}\n" for key, offset in zip((10, 11), offsets, strict=True)))
    assert load_recordio(rec, cache_dir=tmp_path / "cache")["pid"] == [3, 1]


# ---------------------------------------------------------------- verification .bin


def write_bin(path: Path, images, is_same, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps((images, is_same), protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4])
def test_verification_bin_pairs(tmp_path, protocol):
    images = [jpeg_bytes(v) for v in (10, 20, 30, 40)]
    path = write_bin(
        tmp_path / "lfw.bin", images, np.array([True, False]), protocol
    )  # numpy bools, as some files
    loaded, is_same = read_verification_bin(path)
    assert loaded == images and is_same.tolist() == [True, False]
    dataset = load_verification_bin(path, cache_dir=tmp_path / "cache")
    assert dataset["pair_index"] == [0, 0, 1, 1]
    assert dataset["is_same"] == [True, True, False, False]
    assert dataset["path"] == ["lfw.bin#0", "lfw.bin#1", "lfw.bin#2", "lfw.bin#3"]
    assert set(dataset["pid"]) == {-1} and set(dataset["role"]) == {"pair"}
    assert dataset[3]["image"].size == (6, 6)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_verification_bin_refuses_foreign_pickles(tmp_path, capsys):
    path = write_bin(tmp_path / "evil.bin", [_Exploit(), b"x"], [True])
    with pytest.raises(DatasetLayoutError, match=r"evil.bin: refusing to load builtins.print"):
        read_verification_bin(path)
    assert "must never run" not in capsys.readouterr().out


def test_verification_bin_shape_errors(tmp_path):
    path = write_bin(tmp_path / "bad.bin", [b"a", b"b", b"c"], [True, False])
    with pytest.raises(DatasetLayoutError, match="3 images for 2 pairs"):
        read_verification_bin(path)
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01 not a pickle")
    with pytest.raises(DatasetLayoutError, match="junk.bin: not a readable pickle"):
        load_verification_bin(tmp_path / "junk.bin")


def test_verification_bin_written_by_python2(tmp_path):
    # Python 2 pickled its byte strings as str (SHORT_BINSTRING); Python 3 reads them back as bytes
    # with encoding="bytes", as insightface's load_bin does.
    py2_pickle = b"\x80\x02](U\x03\xff\xd8aU\x03\xff\xd8be]\x88a\x86."
    (tmp_path / "agedb_30.bin").write_bytes(py2_pickle)
    images, is_same = read_verification_bin(tmp_path / "agedb_30.bin")
    assert images == [b"\xff\xd8a", b"\xff\xd8b"] and is_same.tolist() == [True]
