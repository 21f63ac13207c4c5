"""The training photos pre-resized once (uint8 squares): the processor's square to half a grey level, the
same masks and keypoints, unreadable photos refused by name, other photos or settings refused."""

from __future__ import annotations

import numpy as np
import pytest

from sapiensid_hf.modeling import SapiensIDConfig
from sapiensid_hf.processing.image_decoding import SapiensIDInputError
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.training.dataset import DatasetView, SampleReader
from sapiensid_hf.training.image_cache import ImageCacheMismatchError, build_image_cache


@pytest.fixture
def view_and_processor(people_dir, tmp_path):
    import datasets

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    paths = [str(people_dir / name) for name in ("face_a_1.jpg", "street_bus.jpg", "two_men.jpg")] + [str(broken)]
    table = datasets.Dataset.from_dict({"path": paths, "pid": [0, 1, 2, 3]})
    processor = SapiensIDImageProcessor.from_model_config(SapiensIDConfig.tiny(image_size=96))
    return DatasetView(table), processor


def test_cached_squares_are_the_processors_to_half_a_grey_level(view_and_processor, tmp_path):
    view, processor = view_and_processor
    keypoints = np.random.default_rng(0).uniform(0, 1, (len(view), 19, 2)).astype(np.float32)
    images = [view.image(row) for row in range(len(view))]
    cache = build_image_cache(images, view.paths, processor, tmp_path / "cache", chunk_size=2, num_workers=2, progress=False)
    assert cache.pixels.shape == (4, 96, 96, 3) and cache.pixels.dtype == np.uint8
    decoded = SampleReader(view, keypoints, processor)
    cached = SampleReader(view, keypoints, processor, cache)
    for row in range(3):
        pixels, mask, points = decoded.read(row)
        cached_pixels, cached_mask, cached_points = cached.read(row)
        assert np.abs(cached_pixels - pixels).max() <= 0.5 / 255 + 1e-6
        np.testing.assert_array_equal(cached_mask, mask)
        np.testing.assert_array_equal(cached_points, points)
        assert cached_mask.dtype == mask.dtype and cached_pixels.dtype == pixels.dtype
    assert not cache.readable(3)
    with pytest.raises(SapiensIDInputError, match="broken.jpg: the photo could not be read"):
        cached.read(3)


def test_a_cache_is_reused_and_one_of_other_photos_or_sizes_is_refused(view_and_processor, tmp_path):
    view, processor = view_and_processor
    images = [view.image(row) for row in range(len(view))]
    first = build_image_cache(images, view.paths, processor, tmp_path / "cache", num_workers=0, progress=False)
    again = build_image_cache(images, view.paths, processor, tmp_path / "cache", num_workers=0, progress=False)
    np.testing.assert_array_equal(np.asarray(again.pixels), np.asarray(first.pixels))
    with pytest.raises(ImageCacheMismatchError, match="other photos"):
        build_image_cache(images[:3], view.paths[:3], processor, tmp_path / "cache", num_workers=0, progress=False)
    bigger = SapiensIDImageProcessor.from_model_config(SapiensIDConfig.tiny(image_size=128))
    with pytest.raises(ImageCacheMismatchError, match="other settings"):
        build_image_cache(images, view.paths, bigger, tmp_path / "cache", num_workers=0, progress=False)
