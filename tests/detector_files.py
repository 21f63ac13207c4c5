"""Skip, saying how to fix it, when the keypoint detector's files are not installed."""

import pytest

from sapiensid_hf.processing import detector_assets
from sapiensid_hf.processing.detector_assets import (
    DetectorNotAvailableError,
    detector_dir,
    locate_detector_files,
)


def require_detector_files() -> None:
    """Skip the calling test unless every detector file is present and matches its recorded sha256."""
    try:
        locate_detector_files()
    except DetectorNotAvailableError as error:
        pytest.skip(f"detector files not in {detector_dir()}; run `sapiensid download-detector` ({error})")


def hide_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the processor's lazy import of OpenCV (`detector_assets.import_opencv`) fail, as on a machine
    without it (until the test ends)."""
    real_import = detector_assets.importlib.import_module

    def without_opencv(name, *args):
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real_import(name, *args)

    monkeypatch.setattr(detector_assets.importlib, "import_module", without_opencv)
