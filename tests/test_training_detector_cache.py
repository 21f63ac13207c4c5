"""The trainer fills its keypoint cache with the real processor detector (skipped without detector files)."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from training_builders import TINY_CONFIG, reset_accelerate

from sapiensid_hf.processing.detector_assets import DetectorNotAvailableError, locate_detector_files
from sapiensid_hf.training import KeypointCache, TrainingConfig, train

FACE_PHOTOS = ("face_a_1.jpg", "face_a_2.jpg", "face_a_3.jpg", "face_b_1.jpg")


@pytest.fixture(autouse=True)
def _detector_files():
    try:
        locate_detector_files()
    except DetectorNotAvailableError as error:
        pytest.skip(f"detector files not installed ({error}); run `sapiensid download-detector`")
    reset_accelerate()
    yield
    reset_accelerate()


def test_trainer_builds_the_keypoint_cache_once_and_skips_the_unreadable_file(people_dir, tmp_path):
    photos = sorted(people_dir.glob("*.jpg"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths = [*photos, broken]
    # One identity per photo; the broken file claims identity 0 too.
    datasets.Dataset.from_dict(
        {"image": [str(p) for p in paths], "path": [p.name for p in paths], "pid": [*range(len(photos)), 0],
         "role": ["train"] * len(paths)},  # fmt: skip
        features=datasets.Features({"image": datasets.Image(), "path": datasets.Value("string"),
                                    "pid": datasets.Value("int64"), "role": datasets.Value("string")}),  # fmt: skip
    ).save_to_disk(str(tmp_path / "dataset"))
    config = TrainingConfig.from_file(TINY_CONFIG).with_overrides(
        [f"data.dataset_path={tmp_path / 'dataset'}", f"data.keypoint_cache={tmp_path / 'keypoints'}",
         f"logging.output_dir={tmp_path / 'run'}", "batch_size=2", "masking.max_batch_size=4",
         "schedule.max_steps=2", "validation.source=none", "logging.save_every_steps=0"]  # fmt: skip
    )
    result = train(config)
    assert result.steps == 2

    cache = KeypointCache.load(tmp_path / "keypoints")
    assert cache.meta["source"] == "detector" and len(cache) == len(paths)
    assert cache.readable.tolist() == [True] * len(photos) + [False]
    assert cache.unreadable[0]["path"] == "broken.jpg" and "SapiensIDInputError" in cache.unreadable[0]["reason"]
    names = [p.name for p in photos]
    for name in FACE_PHOTOS:
        assert cache.face_found[names.index(name)], name
    street = names.index("street_bus.jpg")
    assert (cache.keypoints[street, 15:] != -1).all(axis=1).any()  # knees / ankles of a standing person
    assert np.all((cache.keypoints[cache.readable] == -1) | ((cache.keypoints[cache.readable] >= 0) &
                                                             (cache.keypoints[cache.readable] <= 1)))  # fmt: skip
