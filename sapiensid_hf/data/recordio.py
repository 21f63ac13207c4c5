"""insightface / MXNet RecordIO (`train.rec` + `train.idx`), read in pure Python (no mxnet).

File format (dmlc-core `recordio`): each record is `uint32 magic 0xced7230a`, `uint32 lrecord` (top 3
bits: continuation flag, low 29 bits: length), the payload, then zero padding to 4 bytes. A payload
larger than one record is split into parts flagged 1 (first), 2 (middle), 3 (last), joined back with the
magic number between them. The `.idx` file holds `<key>\\t<byte offset>` lines.

A payload starts with the MXNet image header `struct IRHeader {uint32 flag; float label; uint64 id;
uint64 id2}`; when `flag > 0` the label is instead `flag` float32 values following the header. The
rest is the encoded image. insightface training sets put a meta record at key 0 whose label
`[first_identity_key, end_identity_key]` means the images are keys `1 .. first_identity_key - 1`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from .common import (
    DatasetLayoutError,
    features_with,
    file_signature,
    generator_to_dataset,
    record,
    require_file,
)

RECORDIO_MAGIC = 0xCED7230A
_LENGTH_MASK = (1 << 29) - 1
_IR_FORMAT = "IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)


@dataclass(frozen=True)
class ImageRecordHeader:
    flag: int
    label: float | np.ndarray
    id: int
    id2: int


def unpack_image_record(payload: bytes, where: str = "record") -> tuple[ImageRecordHeader, bytes]:
    """(header, encoded image) of one RecordIO payload (mxnet `recordio.unpack`)."""
    if len(payload) < _IR_SIZE:
        raise DatasetLayoutError(
            f"{where}: payload of {len(payload)} bytes is shorter than the {_IR_SIZE}-byte image header"
        )
    flag, label, id1, id2 = struct.unpack(_IR_FORMAT, payload[:_IR_SIZE])
    body = payload[_IR_SIZE:]
    if flag > 0:
        if len(body) < 4 * flag:
            raise DatasetLayoutError(f"{where}: header announces {flag} labels but the payload is too short")
        label = np.frombuffer(body, np.float32, flag).copy()
        body = body[4 * flag :]
    return ImageRecordHeader(flag, label, id1, id2), body


def pack_image_record(label: float | np.ndarray, image: bytes, id1: int = 0, id2: int = 0) -> bytes:
    """Inverse of `unpack_image_record` (mxnet `recordio.pack`), for writing test or converted data."""
    if np.ndim(label) == 0:
        return struct.pack(_IR_FORMAT, 0, float(label), id1, id2) + image
    values = np.asarray(label, dtype=np.float32).reshape(-1)
    return struct.pack(_IR_FORMAT, values.size, 0.0, id1, id2) + values.tobytes() + image


def write_record(handle, payload: bytes) -> None:
    """Append one whole (unsplit) record to an open binary file."""
    if len(payload) > _LENGTH_MASK:
        raise ValueError(f"payload of {len(payload)} bytes is larger than one RecordIO record")
    handle.write(struct.pack("<II", RECORDIO_MAGIC, len(payload)))
    handle.write(payload)
    handle.write(b"\x00" * (-len(payload) % 4))


class RecordIOReader:
    """Random access to an indexed RecordIO file: `reader[key] -> payload bytes`, `reader.keys`."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None):
        self.rec_path = require_file(Path(rec_path), "RecordIO data")
        self.idx_path = require_file(
            Path(idx_path) if idx_path else self.rec_path.with_suffix(".idx"), "RecordIO index"
        )
        self._offsets = self._read_index()
        self._size = self.rec_path.stat().st_size
        self._handle = open(self.rec_path, "rb")  # noqa: SIM115 - kept open for random access, closed in close()

    def _read_index(self) -> dict[int, int]:
        offsets = {}
        for number, line in enumerate(self.idx_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0].strip().isdigit() or not parts[1].strip().isdigit():
                raise DatasetLayoutError(
                    f"{self.idx_path}:{number}: expected '<key>\\t<offset>', got {line!r}"
                )
            offsets[int(parts[0])] = int(parts[1])
        if not offsets:
            raise DatasetLayoutError(f"{self.idx_path}: the index is empty")
        return offsets

    @property
    def keys(self) -> list[int]:
        return list(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, key: int) -> bytes:
        if key not in self._offsets:
            raise KeyError(f"{self.idx_path}: no record with key {key}")
        return self._read_at(self._offsets[key], f"{self.rec_path} (key {key})")

    def _read_at(self, offset: int, where: str) -> bytes:
        parts = []
        position = offset
        while True:
            if position + 8 > self._size:
                raise DatasetLayoutError(
                    f"{where}: record header at byte {position} lies past the end of the file"
                )
            self._handle.seek(position)
            magic, lrecord = struct.unpack("<II", self._handle.read(8))
            if magic != RECORDIO_MAGIC:
                raise DatasetLayoutError(
                    f"{where}: no RecordIO magic number at byte {position} (index and data do not match?)"
                )
            flag, length = lrecord >> 29, lrecord & _LENGTH_MASK
            expected = (0, 1) if not parts else (2, 3)  # whole or first part, then middle or last parts
            if flag not in expected:
                raise DatasetLayoutError(
                    f"{where}: continuation flag {flag} at byte {position}, expected one of {expected}"
                )
            chunk = self._handle.read(length)
            if len(chunk) != length:
                raise DatasetLayoutError(f"{where}: record at byte {position} is truncated")
            parts.append(chunk)
            position += 8 + length + (-length % 4)
            if flag in (0, 3):
                return struct.pack("<I", RECORDIO_MAGIC).join(parts)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RecordIOReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def image_keys(reader: RecordIOReader) -> list[int]:
    """Keys of the image records, insightface `MXFaceDataset` rule (meta record at key 0)."""
    if 0 in reader._offsets:
        header, _ = unpack_image_record(reader[0], f"{reader.rec_path} (key 0)")
        if header.flag > 0:
            return list(range(1, int(header.label[0])))
    return reader.keys


def label_of(header: ImageRecordHeader) -> int:
    return int(header.label if np.ndim(header.label) == 0 else header.label[0])


def _generate(rec_path: str, idx_path: str, role: str) -> Iterator[dict]:
    with RecordIOReader(rec_path, idx_path) as reader:
        name = Path(rec_path).name
        for key in image_keys(reader):
            header, image = unpack_image_record(reader[key], f"{rec_path} (key {key})")
            yield record(image, f"{name}#{key}", label_of(header), -1, -1, role)


def load_recordio(
    rec_path: str | os.PathLike,
    idx_path: str | os.PathLike | None = None,
    role: str = "train",
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """An insightface RecordIO training set as a `datasets.Dataset` (images stored as encoded bytes).

    Args:
        rec_path: the `.rec` file; `idx_path` defaults to the same name with `.idx`.
    """
    rec = require_file(Path(rec_path), "RecordIO data")
    idx = require_file(Path(idx_path) if idx_path else rec.with_suffix(".idx"), "RecordIO index")
    with RecordIOReader(rec, idx) as reader:
        image_keys(reader)  # fail here, with the file name, rather than inside the dataset builder
    return generator_to_dataset(
        _generate,
        {"rec_path": str(rec), "idx_path": str(idx), "role": role},
        [*file_signature(rec), *file_signature(idx), role],
        features_with(),
        cache_dir,
    )
