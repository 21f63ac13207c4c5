"""The shipped folder used the Hugging Face way by someone without this package: `AutoModel` /
`AutoImageProcessor` with `trust_remote_code=True` and the `image-feature-extraction` pipeline, on the
newest transformers (the project's own environment with the package blocked) and on the oldest supported
one (a separate environment built once per machine, see OLDEST_TRANSFORMERS), against the package's own
embeddings of the same photos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from hub_isolation import BLOCK_PACKAGE
from PIL import Image

from sapiensid_hf.inference import load_pipeline

SHIPPED = REPO_ROOT / "pretrained" / "sapiensid-small"
CHECK_SCRIPT = Path(__file__).with_name("hub_portable_check.py")
PHOTOS = ("face_a_1.jpg", "couple.jpg", "face_a_2.jpg")
# The oldest transformers the flat code files support (README, docs/model.md): the last 4.x release.
OLDEST_TRANSFORMERS = "4.57.6"
# What the folder's code needs besides transformers: the pinned torch, the keypoint detector's runtime and
# OpenCV (a small person's face is framed around its face box, as the package frames it).
OLDEST_ENV_PACKAGES = (
    "torch==2.13.0", f"transformers=={OLDEST_TRANSFORMERS}", "pillow", "ai-edge-litert==2.3.0", "opencv-python-headless>=4.8,<5",
)  # fmt: skip
OLDEST_ENV_DIR = Path.home() / ".cache" / "sapiensid_hf" / "test-envs" / f"transformers-{OLDEST_TRANSFORMERS}"


@pytest.fixture(scope="module")
def photos(people_dir) -> list[str]:
    return [str(people_dir / name) for name in PHOTOS]


@pytest.fixture(scope="module")
def nobody_photo(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("nobody") / "dark_red.png"
    Image.new("RGB", (240, 180), (90, 20, 20)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def package_embeddings(photos) -> dict[str, np.ndarray]:
    """What `sapiensid embed` writes for the photos as given (the library function it calls; the folder's
    rule of centre cuts and flip: how the card's figures and thresholds were measured), and what `sapiensid
    embed --no-cuts --no-flip` writes (the photo as it is). The folder's processor cuts a person who fills
    little of the photo as the package does (its `frame_small_people`; couple.jpg's couple is cut)."""
    pipeline = load_pipeline(str(SHIPPED))
    assert pipeline.embedding_cuts == (1.0, 0.95, 0.9)
    result = pipeline.embed(photos, flip=True)
    assert result.person_found.all() and result.framed.tolist() == [False, True, False]
    pipeline.model.config.embedding_cuts = None
    return {"rule": result.embeddings, "as_is": pipeline.embed(photos, flip=False, frame_small_people=False).embeddings}


def _run_check(python: str, photos: list[str], nobody: str, tmp_path: Path, prelude: str = "") -> dict:
    # A fresh module cache per run: the two transformers versions must not share copied code files.
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    code = prelude + f"import runpy, sys\nsys.argv = {[str(CHECK_SCRIPT), str(SHIPPED), nobody, *photos]!r}\n"
    code += f"runpy.run_path({str(CHECK_SCRIPT)!r}, run_name='__main__')\n"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_matches_the_package(report: dict, package_embeddings: dict[str, np.ndarray]) -> None:
    assert "sapiensid_hf" not in report["model_module"] and "transformers_modules" in report["model_module"]
    pooled = np.asarray(report["pooled"])
    assert pooled.shape == package_embeddings["rule"].shape
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)
    # pool=True is what `sapiensid embed` writes for the same photo, under the folder's rule of centre
    # cuts and flip (the processor makes the cuts and the mirrors' keypoints, the model adds them up); the
    # batch of 3 in pipeline batches of 2.
    assert report["view_inputs"] == ["cut_keypoints", "cut_mirrored_keypoints", "cut_pixel_mask", "cut_pixel_values", "mirrored_keypoints"]
    assert np.abs(pooled - package_embeddings["rule"]).max() <= 1e-5
    # The rule turned off in the processor call: the photo as it is, `sapiensid embed --no-cuts --no-flip`.
    assert np.abs(np.asarray(report["photo_alone"])[0] - package_embeddings["as_is"][0]).max() <= 1e-5
    assert np.abs(package_embeddings["rule"][0] - package_embeddings["as_is"][0]).max() > 1e-3  # they differ
    # Without pool: the model's first output, the (not normalised) embedding, as the model call gives it.
    unpooled = np.asarray(report["unpooled"])[0]
    np.testing.assert_allclose(unpooled, np.asarray(report["direct"])[0], atol=1e-5)
    assert abs(np.linalg.norm(unpooled) - 1.0) > 0.1
    np.testing.assert_allclose(unpooled / np.linalg.norm(unpooled), pooled[0], atol=1e-5)
    # A photo with nobody in it is refused, never answered with the constant no-person vector.
    assert report["nobody_error"] is not None and "no person was found" in report["nobody_error"]


def test_the_pipeline_without_the_package_on_the_newest_transformers(photos, nobody_photo, package_embeddings, tmp_path):
    import transformers

    report = _run_check(sys.executable, photos, nobody_photo, tmp_path, prelude=BLOCK_PACKAGE)
    assert report["transformers"] == transformers.__version__ and int(transformers.__version__.split(".")[0]) >= 5
    _assert_matches_the_package(report, package_embeddings)


def _oldest_supported_environment() -> Path:
    """A virtual environment with the oldest supported transformers and no sapiensid_hf (built once)."""
    python = OLDEST_ENV_DIR / "bin" / "python"
    complete = OLDEST_ENV_DIR / "complete"
    if complete.is_file() and complete.read_text().split() == list(OLDEST_ENV_PACKAGES):
        return python  # built with these packages (an environment built with others is built again)
    building = OLDEST_ENV_DIR.with_name(OLDEST_ENV_DIR.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True, timeout=300)
    install = subprocess.run(
        [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", *OLDEST_ENV_PACKAGES],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    (building / "complete").write_text("\n".join(OLDEST_ENV_PACKAGES) + "\n")
    # Only `bin/python -m ...` is used, which works from the renamed folder (pip's own scripts would not).
    shutil.rmtree(OLDEST_ENV_DIR, ignore_errors=True)
    building.rename(OLDEST_ENV_DIR)
    return python


def test_the_oldest_supported_transformers_loads_the_shipped_folder(photos, nobody_photo, package_embeddings, tmp_path):
    python = _oldest_supported_environment()
    report = _run_check(str(python), photos, nobody_photo, tmp_path)
    assert report["transformers"] == OLDEST_TRANSFORMERS
    _assert_matches_the_package(report, package_embeddings)
