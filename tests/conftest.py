"""Shared test fixtures: repository paths and small SapiensID models; one box-overlap helper."""

from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
PEOPLE_DIR = SHARED_DATA / "people"


def box_iou(first, second) -> float:
    """Intersection over union of two xyxy boxes (processing/people_detection.box_overlaps)."""
    from sapiensid_hf.processing.people_detection import box_overlaps

    return box_overlaps(np.asarray(first, dtype=np.float32), np.asarray(second, dtype=np.float32))[0]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def fresh_accelerate():
    """In-process training runs: forget Accelerate's process-wide state before and after the test."""
    from training_builders import reset_accelerate

    reset_accelerate()
    yield
    reset_accelerate()


@pytest.fixture(scope="session")
def people_dir() -> Path:
    if not PEOPLE_DIR.is_dir():
        pytest.skip(f"real test photos not found at {PEOPLE_DIR} (../shared/data/people beside the repo)")
    return PEOPLE_DIR


@pytest.fixture(scope="session")
def trained_tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random model saved with its processor and a stand-in training record, so the tools treat it
    as trained weights. Shared by the session: copy it before changing it."""
    from tiny_models import save_trained_tiny_model

    return save_trained_tiny_model(tmp_path_factory.mktemp("trained_tiny_model"))


@pytest.fixture(scope="module")
def model_dir(trained_tiny_model_dir) -> Path:
    """The trained tiny model, for tests that also run the real keypoint detector (skipped without it).
    Modules that need another model define their own `model_dir`."""
    from detector_files import require_detector_files

    require_detector_files()
    return trained_tiny_model_dir


@pytest.fixture(scope="module")
def pipeline(model_dir):
    """`load_pipeline(model_dir)`, one per test module (a test that changes it restores it)."""
    from sapiensid_hf.inference import load_pipeline

    return load_pipeline(model_dir)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
