"""Every command that starts worker processes, run with the worker count a user gets by default (made at
least 2 here, whatever this machine has), gives the numbers of the same command in one process.

`sapiensid evaluate` once shipped broken with its default workers because every test passed
`--num-workers 0`; these tests run the commands as a user types them and check that workers really ran.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from detector_files import require_detector_files
from dev_layouts import PHOTOS, identities_layout

from sapiensid_cli import main
from sapiensid_hf import parallel_processing


@pytest.fixture(scope="module")
def model_dir(trained_tiny_model_dir) -> Path:
    return trained_tiny_model_dir


class WorkerCounts:
    """The `num_workers` of every DataLoader built while the test runs."""

    def __init__(self):
        self.seen: list[int] = []

    def most(self) -> int:
        return max(self.seen, default=0)


@pytest.fixture
def two_cores(monkeypatch) -> WorkerCounts:
    """The default ("auto") worker count is computed for 2 cores (2 workers); DataLoaders record their worker count."""
    require_detector_files()
    monkeypatch.setattr(parallel_processing, "available_cores", lambda: 2)
    counts = WorkerCounts()
    loader_class = torch.utils.data.DataLoader

    class CountingLoader(loader_class):
        def __init__(self, *args, **kwargs):
            counts.seen.append(kwargs.get("num_workers", 0))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.utils.data, "DataLoader", CountingLoader)
    return counts


def run_cli(capsys, *argv) -> tuple[int, str]:
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def market_layout(people_dir: Path, root: Path) -> Path:
    """Market-1501 file names over the real photos: person 1 has three photos (query + two gallery)."""
    files = {
        "query/0001_c1s1_000001_00.jpg": "face_a_1.jpg",
        "query/0002_c1s1_000001_00.jpg": "two_men.jpg",
        "bounding_box_test/0001_c2s1_000002_01.jpg": "face_a_2.jpg",
        "bounding_box_test/0001_c3s1_000003_01.jpg": "face_a_3.jpg",
        "bounding_box_test/0002_c2s1_000002_01.jpg": "street_bus.jpg",
        "bounding_box_test/0003_c2s1_000002_01.jpg": "couple.jpg",
        "bounding_box_test/0004_c3s1_000002_01.jpg": "face_b_1.jpg",
    }
    for name, photo in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(people_dir / photo, root / name)
    return root


def test_evaluate_with_default_workers_scores_what_one_process_scores(capsys, tmp_path, model_dir, people_dir, two_cores):
    root = market_layout(people_dir, tmp_path / "market")
    common = ("evaluate", "--model", model_dir, "--dataset-root", root, "--benchmark", "market1501", "--batch-size", 3)
    status, output = run_cli(capsys, *common, "--output-dir", tmp_path / "default")
    assert status == 0, output
    assert two_cores.most() >= 2  # the default really started workers
    status, output = run_cli(capsys, *common, "--output-dir", tmp_path / "serial", "--num-workers", "0")
    assert status == 0, output

    default = json.loads((tmp_path / "default" / "results.json").read_text())["rankings"]
    serial = json.loads((tmp_path / "serial" / "results.json").read_text())["rankings"]
    assert default.keys() == serial.keys() == {"overall"}
    for metric in ("rank1", "mAP", "mINP", "num_queries", "num_gallery"):
        assert default["overall"][metric] == pytest.approx(serial["overall"][metric], abs=1e-9), metric
    assert default["overall"]["num_queries"] == 2 and default["overall"]["num_gallery"] == 5
    [default_cache] = (tmp_path / "default" / "embeddings").glob("*.npz")
    [serial_cache] = (tmp_path / "serial" / "embeddings").glob("*.npz")
    np.testing.assert_allclose(np.load(default_cache)["embeddings"], np.load(serial_cache)["embeddings"], atol=1e-5)


def test_evaluate_names_an_unreadable_benchmark_image_with_default_workers(capsys, tmp_path, model_dir, people_dir, two_cores):
    root = market_layout(people_dir, tmp_path / "market")
    broken = root / "bounding_box_test" / "0005_c2s1_000002_01.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    status, output = run_cli(
        capsys, "evaluate", "--model", model_dir, "--dataset-root", root, "--benchmark", "market1501",
        "--output-dir", tmp_path / "out",
    )  # fmt: skip
    assert status == 1
    assert "no score would be right" in output and str(broken) in output and "Traceback" not in output
    assert not (tmp_path / "out" / "results.json").exists()


def test_public_dev_with_default_workers_scores_what_one_process_scores(capsys, tmp_path, model_dir, people_dir, two_cores):
    root = identities_layout(people_dir, tmp_path / "identities")
    common = ("evaluate", "--model", model_dir, "--dataset-root", root, "--benchmark", "public-dev", "--no-baseline")
    status, output = run_cli(capsys, *common, "--output-dir", tmp_path / "default")
    assert status == 0, output
    assert two_cores.most() >= 2
    status, output = run_cli(capsys, *common, "--output-dir", tmp_path / "serial", "--num-workers", "0")
    assert status == 0, output

    default = json.loads((tmp_path / "default" / "results.json").read_text())["models"]
    serial = json.loads((tmp_path / "serial" / "results.json").read_text())["models"]
    for check in ("cuhk03_val", "conreid", "lfw_fold7"):
        for part, values in serial[model_dir.name][check].items():
            for metric in ("rank1", "mAP", "accuracy", "tar@far=0.01"):
                if metric in values:
                    got = default[model_dir.name][check][part][metric]
                    assert got == pytest.approx(values[metric], abs=1e-9), (check, part, metric)
    for check in ("cuhk03_val", "conreid", "lfw_fold7"):  # the same keypoints, detected by workers or not
        default_points = np.load(tmp_path / "default" / "keypoints" / check / "keypoints.npy")
        serial_points = np.load(tmp_path / "serial" / "keypoints" / check / "keypoints.npy")
        np.testing.assert_array_equal(default_points, serial_points)


def test_embed_and_search_with_default_workers_give_the_one_process_numbers(capsys, tmp_path, model_dir, people_dir, two_cores):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for name in PHOTOS:
        shutil.copy(people_dir / name, gallery / name)
    status, output = run_cli(capsys, "embed", gallery, "-o", tmp_path / "default.npy", "--model", model_dir)
    assert status == 0, output
    assert two_cores.most() >= 2
    status, output = run_cli(
        capsys, "embed", gallery, "-o", tmp_path / "serial.npy", "--model", model_dir, "--num-workers", "0"
    )
    assert status == 0, output
    np.testing.assert_allclose(np.load(tmp_path / "default.npy"), np.load(tmp_path / "serial.npy"), atol=1e-5)

    two_cores.seen.clear()
    query = people_dir / "face_a_3.jpg"
    rankings = []
    for extra in ((), ("--num-workers", "0")):
        status, output = run_cli(capsys, "search", query, "--gallery", gallery, "--top-k", 6, "--model", model_dir, *extra)
        assert status == 0, output
        rankings.append([line for line in output.splitlines() if str(gallery) in line])
    assert two_cores.most() >= 2
    assert rankings[0] == rankings[1] and len(rankings[0]) == len(PHOTOS)
