"""Decoding and detection in worker processes: the same numbers as one processor call, in the caller's
order, and a bad file reported by its own index and name (real photos, real detector)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from detector_files import require_detector_files

from sapiensid_cli.argument_types import worker_count
from sapiensid_hf import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.commands.common import embed_images
from sapiensid_hf.inference import SapiensIDPipeline
from sapiensid_hf.keypoint_cache import build_keypoint_cache
from sapiensid_hf.parallel_processing import merge_features, process_images
from sapiensid_hf.processing.image_decoding import SapiensIDInputError
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor

PHOTOS = ("face_a_1.jpg", "street_bus.jpg", "two_men.jpg", "face_b_1.jpg", "couple.jpg")


@pytest.fixture(scope="module")
def pipeline() -> SapiensIDPipeline:
    require_detector_files()
    torch.manual_seed(0)
    config = SapiensIDConfig.tiny()
    return SapiensIDPipeline(SapiensIDModel(config), SapiensIDImageProcessor.from_model_config(config), trained=False)


@pytest.fixture
def photos(people_dir, tmp_path) -> list[Path]:
    """The real photos plus a broken JPEG at index 2."""
    paths = [people_dir / name for name in PHOTOS]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return [*paths[:2], broken, *paths[2:]]


def test_workers_give_the_features_of_one_processor_call_in_order(pipeline, people_dir):
    paths = [str(people_dir / name) for name in PHOTOS]
    whole = pipeline.processor(paths, return_tensors="pt")
    batches = list(process_images(pipeline.processor, paths, batch_size=2, num_workers=2))
    assert [batch.indices for batch in batches] == [[0, 1], [2, 3], [4]]
    assert all(not batch.failures for batch in batches)
    for key in ("pixel_values", "pixel_mask", "keypoints", "roi_boxes", "person_found", "num_people", "person_box"):
        joined = torch.cat([batch.features[key] for batch in batches])
        torch.testing.assert_close(joined, whole[key], rtol=0, atol=0, msg=key)
    assert [source for batch in batches for source in batch.features["keypoint_source"]] == whole["keypoint_source"]


def test_pipeline_embeddings_do_not_depend_on_workers_or_batching(pipeline, people_dir):
    paths = [str(people_dir / name) for name in PHOTOS]
    serial = pipeline.embed(paths, batch_size=8)
    parallel = pipeline.embed(paths, batch_size=2, num_workers=2)
    np.testing.assert_allclose(parallel.embeddings, serial.embeddings, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(parallel.keypoints, serial.keypoints)
    np.testing.assert_array_equal(parallel.person_found, serial.person_found)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_broken_file_is_named_by_its_index_in_the_callers_list(pipeline, photos, num_workers):
    names = [str(path) for path in photos]
    with pytest.raises(SapiensIDInputError, match=r"image 2 \('.*broken\.jpg'\)"):
        pipeline.embed(names, batch_size=2, num_workers=num_workers)


def test_skip_unreadable_with_workers_keeps_the_order_of_the_rest(pipeline, photos):
    embedded = embed_images(pipeline, photos, batch_size=2, skip_unreadable=True, num_workers=2)
    assert embedded.paths == [path for path in photos if path.name != "broken.jpg"]
    assert [path.name for path, _ in embedded.skipped] == ["broken.jpg"]
    reference = pipeline.embed([str(path) for path in embedded.paths], batch_size=8)
    np.testing.assert_allclose(embedded.result.embeddings, reference.embeddings, rtol=0, atol=1e-6)


def test_without_skip_the_first_broken_file_stops_the_command(pipeline, photos):
    with pytest.raises(SapiensIDInputError, match="broken.jpg"):
        embed_images(pipeline, photos, batch_size=2, num_workers=2)


def test_keypoint_cache_built_by_workers_equals_the_serial_build(pipeline, photos, tmp_path):
    paths = [str(path) for path in photos]
    serial = build_keypoint_cache(
        paths.__getitem__, paths, pipeline.processor, tmp_path / "serial", batch_size=2, num_workers=0, progress=False
    )
    parallel = build_keypoint_cache(
        paths.__getitem__, paths, pipeline.processor, tmp_path / "parallel", batch_size=2, num_workers=2, progress=False
    )
    for name in ("keypoints", "person_found", "face_found", "readable"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name), err_msg=name)
    assert parallel.readable.tolist() == [True, True, False, True, True, True]
    assert [entry["row"] for entry in parallel.unreadable] == [2]
    assert parallel.unreadable == serial.unreadable


def test_process_images_takes_a_callable_and_checks_its_arguments(pipeline, people_dir):
    path = str(people_dir / "face_a_1.jpg")
    batches = list(process_images(pipeline.processor, lambda row: path, batch_size=2, count=3))
    assert [batch.indices for batch in batches] == [[0, 1], [2]]
    with pytest.raises(ValueError, match="count is required"):
        list(process_images(pipeline.processor, lambda row: path, batch_size=2))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        list(process_images(pipeline.processor, [path], batch_size=0))


def test_merge_features_joins_arrays_and_per_image_lists():
    first = {"keypoints": np.zeros((1, 19, 2), np.float32), "keypoint_source": ["pose"], "person_boxes": [np.ones((2, 4))]}
    second = {"keypoints": np.ones((1, 19, 2), np.float32), "keypoint_source": ["none"], "person_boxes": [np.ones((0, 4))]}
    merged = merge_features([first, second])
    assert merged["keypoints"].shape == (2, 19, 2) and float(merged["keypoints"][1].sum()) == 38.0
    assert merged["keypoint_source"] == ["pose", "none"]
    assert [tuple(boxes.shape) for boxes in merged["person_boxes"]] == [(2, 4), (0, 4)]


def test_detector_threads_are_a_runtime_choice_never_saved(tmp_path):
    processor = SapiensIDImageProcessor()
    processor.set_detector_threads(1)
    assert "_detector_threads" not in processor.to_dict()
    processor.save_pretrained(tmp_path)
    assert "detector_threads" not in (tmp_path / "preprocessor_config.json").read_text()
    with pytest.raises(ValueError, match="at least 1"):
        processor.set_detector_threads(0)


def test_worker_count_argument():
    assert worker_count("auto") is None
    assert worker_count("0") == 0 and worker_count("3") == 3
    with pytest.raises(Exception, match="0 or more, or auto"):
        worker_count("-1")



def test_the_model_takes_the_cores_the_workers_leave_and_gives_them_back(monkeypatch):
    from sapiensid_hf import parallel_processing

    monkeypatch.setattr(parallel_processing, "available_cores", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        cpu = torch.device("cpu")
        with parallel_processing.model_threads_beside(3, cpu):
            assert torch.get_num_threads() == 1
        with parallel_processing.model_threads_beside(8, cpu):
            assert torch.get_num_threads() == 1  # never fewer than one
        with parallel_processing.model_threads_beside(0, cpu):
            assert torch.get_num_threads() == 4  # no workers: untouched
        with parallel_processing.model_threads_beside(3, torch.device("cuda")):
            assert torch.get_num_threads() == 4  # the model is not on the CPU: untouched
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
