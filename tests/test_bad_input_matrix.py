"""Bad input through the command line: every kind gets a clear message naming the file (exit 1), or the
documented fallback (exit 0) — never a traceback, never a silent score."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from detector_files import require_detector_files
from PIL import Image

from sapiensid_cli import main
from sapiensid_hf import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.inference import MODEL_ENV_VAR


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("matrix_model")
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig.tiny())
    model.config.training = {"trainer": "tests: a stand-in for trained weights"}
    model.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _no_model_from_environment(monkeypatch):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _ramps(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(x, (height, 1))] * 3, -1))


# name -> (file bytes, expected exit status, text that must appear on stderr / stdout)
def _cases(people_dir):
    photo = (people_dir / "face_a_2.jpg").read_bytes()
    with Image.open(people_dir / "face_a_2.jpg") as opened:
        person = opened.convert("RGB")
    return {
        "empty.jpg": (b"", 1, "empty.jpg"),
        "text.jpg": (b"this is not a picture", 1, "text.jpg"),
        "truncated.jpg": (photo[: len(photo) // 3], 1, "truncated.jpg"),
        "corrupt.png": (_encoded(person, "PNG")[:80] + bytes(range(256)) * 8, 1, "corrupt.png"),
        "tiny.png": (_encoded(Image.new("RGB", (4, 4), (90, 90, 90)), "PNG"), 1, "tiny.png"),
        # Fallbacks: other modes are converted, a wide strip keeps its fullest patches.
        "grey.png": (_encoded(person.convert("L"), "PNG"), 0, "face found"),
        "cmyk.jpg": (_encoded(person.convert("CMYK"), "JPEG"), 0, "face found"),
        "rgba.png": (_encoded(person.convert("RGBA"), "PNG"), 0, "face found"),
        "palette.gif": (_encoded(person.convert("P"), "GIF"), 0, "face found"),
        "wide_strip.png": (_encoded(_ramps(1400, 100), "PNG"), 0, "no person found"),
        # Thinner than one pixel of the model's square: it covers the line of its middle (was a model error).
        "thin_strip.png": (_encoded(_ramps(6000, 12), "PNG"), 0, "no person found"),
    }


@pytest.mark.parametrize(
    "name",
    ["empty.jpg", "text.jpg", "truncated.jpg", "corrupt.png", "tiny.png", "grey.png", "cmyk.jpg", "rgba.png",
     "palette.gif", "wide_strip.png", "thin_strip.png"],
)  # fmt: skip
def test_compare_with_a_bad_or_unusual_image(name, model_dir, people_dir, tmp_path, capsys):
    require_detector_files()
    content, status, expected = _cases(people_dir)[name]
    bad = tmp_path / name
    bad.write_bytes(content)
    code = main(["compare", str(people_dir / "face_a_1.jpg"), str(bad), "--model", str(model_dir)])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == status, text[-2000:]
    assert expected in text and "Traceback" not in text
    if status == 0 and "no person found" in expected:
        assert "unknown: no person found in B" in captured.out  # no silent score for a picture without a person


def test_embed_skips_every_unreadable_kind_and_names_each(model_dir, people_dir, tmp_path, capsys):
    require_detector_files()
    folder = tmp_path / "photos"
    folder.mkdir()
    cases = _cases(people_dir)
    for name, (content, _, _) in cases.items():
        (folder / name).write_bytes(content)
    output = tmp_path / "all.parquet"
    code = main(["embed", str(folder), "-o", str(output), "--model", str(model_dir), "--skip-unreadable"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    unreadable = [name for name, (_, status, _) in cases.items() if status == 1]
    assert all(f"skipped {folder / name}" in err for name in unreadable)
    import pyarrow.parquet as pq

    table = pq.read_table(output)
    assert sorted(p.rsplit("/", 1)[1] for p in table.column("path").to_pylist()) == sorted(set(cases) - set(unreadable))
    found = dict(zip((p.rsplit("/", 1)[1] for p in table.column("path").to_pylist()), table.column("person_found").to_pylist(), strict=True))
    assert found["wide_strip.png"] is False and found["thin_strip.png"] is False and found["grey.png"] is True
    without_person = sum(1 for value in found.values() if not value)
    assert table.schema.metadata[b"sapiensid.rows_without_person"] == str(without_person).encode()
