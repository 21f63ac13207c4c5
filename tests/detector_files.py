"""Skip, saying how to fix it, when the keypoint detector's files are not installed."""

import pytest

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


def hide_opencv(monkeypatch: pytest.MonkeyPatch, module) -> None:
    """Make `module`'s lazy import of OpenCV fail, as on a machine without it (until the test ends)."""
    real_import = module.importlib.import_module

    def without_opencv(name, *args):
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real_import(name, *args)

    monkeypatch.setattr(module.importlib, "import_module", without_opencv)
