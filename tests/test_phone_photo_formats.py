"""Photos as phones save them: AVIF is read by PIL itself; HEIC / HEIF is read with the pillow-heif plug-in
installed (not installed by this project: GPLv2 wheels) and otherwise refused with what it needs, never left
out of a folder without a word."""

from __future__ import annotations

import io
import shutil
import struct
import sys
import types

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFile

from sapiensid_cli import main
from sapiensid_hf.processing.image_decoding import SapiensIDInputError, is_heif, load_rgb

PIXELS = np.random.default_rng(0).integers(0, 256, (20, 16, 3), dtype=np.uint8)


def heif_bytes(pixels: np.ndarray = PIXELS) -> bytes:
    """A file with a HEIF still's header ("ftyp", brand "heic") and, for the stand-in plug-in below, its
    size and raw RGB pixels where the HEVC data would be."""
    height, width = pixels.shape[:2]
    return b"\x00\x00\x00\x18ftypheic" + bytes(8) + struct.pack(">HH", width, height) + pixels.tobytes()


class StandInHeifFile(ImageFile.ImageFile):
    """What pillow-heif's opener does for PIL, for the files of `heif_bytes`."""

    format = "HEIF"

    def _open(self) -> None:
        width, height = struct.unpack(">HH", self.fp.read(24)[20:24])
        self._size = (width, height)
        self._mode = "RGB"
        self.tile = [ImageFile._Tile("raw", (0, 0, width, height), 24, ("RGB", 0, 1))]


@pytest.fixture
def stand_in_heif_plugin(monkeypatch) -> types.SimpleNamespace:
    """An installed "pillow_heif" whose register_heif_opener registers StandInHeifFile (undone afterwards)."""
    Image.init()
    monkeypatch.setattr(Image, "ID", list(Image.ID))
    monkeypatch.setattr(Image, "OPEN", dict(Image.OPEN))
    plugin = types.SimpleNamespace(registered=0)

    def register_heif_opener() -> None:
        plugin.registered += 1
        Image.register_open(StandInHeifFile.format, StandInHeifFile, lambda prefix: is_heif(prefix[:12]))

    plugin.register_heif_opener = register_heif_opener
    monkeypatch.setitem(sys.modules, "pillow_heif", plugin)
    return plugin


@pytest.fixture
def no_heif_plugin(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails, as where it is not installed


def test_heif_is_told_by_its_header():
    assert is_heif(heif_bytes()[:12])
    assert not is_heif(b"\x00\x00\x00\x1cftypavif")  # AVIF: PIL reads it
    assert not is_heif(b"\xff\xd8\xff\xe0" + bytes(8))  # JPEG


def test_a_heic_photo_without_its_plugin_says_what_it_needs(tmp_path, no_heif_plugin):
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heif_bytes())
    for given, name in ((str(path), "image 0 ('IMG_0001.HEIC')"), (heif_bytes(), "image 0 (bytes)")):
        with pytest.raises(SapiensIDInputError) as error:
            load_rgb(given, name)
        assert str(error.value).startswith(f"{name}: a HEIC / HEIF photo") and "pip install pillow-heif" in str(error.value)


def test_a_heic_photo_is_read_once_its_plugin_is_installed(tmp_path, stand_in_heif_plugin):
    path = tmp_path / "IMG_0001.heic"
    path.write_bytes(heif_bytes())
    np.testing.assert_array_equal(load_rgb(str(path), "image 0"), PIXELS)
    np.testing.assert_array_equal(load_rgb(heif_bytes(), "image 0"), PIXELS)
    assert stand_in_heif_plugin.registered == 1  # registered on the first HEIF file, then PIL knows the format


def test_a_plugin_that_cannot_read_the_file_either_is_asked_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "pillow_heif", types.SimpleNamespace(register_heif_opener=lambda: calls.append(1)))
    with pytest.raises(SapiensIDInputError, match="HEIC / HEIF"):
        load_rgb(heif_bytes(), "image 0")
    assert calls == [1]


def test_avif_is_read(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).save(buffer, format="AVIF", quality=100)
    path = tmp_path / "photo.avif"
    path.write_bytes(buffer.getvalue())
    assert load_rgb(str(path), "image 0").shape == PIXELS.shape


def test_a_folder_of_phone_photos_is_read_or_each_heic_named(capsys, tmp_path, model_dir, people_dir, no_heif_plugin):
    photos = people_dir
    folder = tmp_path / "phone"
    folder.mkdir()
    shutil.copy(photos / "face_a_1.jpg", folder / "a.jpg")
    with Image.open(photos / "face_a_2.jpg") as face:
        face.save(folder / "b.avif", quality=90)
    (folder / "c.heic").write_bytes(heif_bytes())
    output = tmp_path / "phone.parquet"
    # Before, c.heic and b.avif were left out of the folder without a word.
    status = main(["embed", str(folder), "-o", str(output), "--model", str(model_dir)])
    err = capsys.readouterr().err
    assert status == 1 and "c.heic" in err and "pillow-heif" in err and "--skip-unreadable" in err
    assert main(["embed", str(folder), "-o", str(output), "--model", str(model_dir), "--skip-unreadable"]) == 0
    assert "c.heic" in capsys.readouterr().err
    assert [path.rpartition("/")[2] for path in pq.read_table(output).column("path").to_pylist()] == ["a.jpg", "b.avif"]
