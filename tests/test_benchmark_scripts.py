"""The benchmark scripts run as scripts: the `__main__` block comes last (a function defined below it does
not exist yet when `main()` runs), and the index benchmark runs end to end on a small collection."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(path for path in BENCHMARKS.glob("*.py"))


def _is_main_block(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_the_main_block_is_the_last_statement(script):
    body = ast.parse(script.read_text(encoding="utf-8")).body
    blocks = [index for index, node in enumerate(body) if _is_main_block(node)]
    assert blocks in ([], [len(body) - 1]), f"{script.name}: code after its `if __name__ == '__main__':` block"


def test_the_index_benchmark_runs_as_a_script(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# Benchmarks\n")
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_index_scale.py"), "--rows", "2000", "--queries", "20",
         "--families", "hnsw", "--write", str(report)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    written = report.read_text()
    assert "## Photo index at scale: exact against approximate search, 2,000 rows (hnsw only)" in written
    assert "| Flat | exact |" in written and "| HNSW32 | efSearch 48 |" in written


def run_on_development_photos(script: str, arguments: list[str], tmp_path: Path) -> str:
    """Run a benchmark that reads ../shared/data/identities with `--write` into a fresh report; its text."""
    identities = BENCHMARKS.parents[1] / "shared" / "data" / "identities"
    if not identities.is_dir():
        pytest.skip(f"development photos not found at {identities}")
    report = tmp_path / "report.md"
    report.write_text("# Benchmarks\n")
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments, "--write", str(report)], capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return report.read_text()


def test_the_framing_benchmark_runs_as_a_script(tmp_path):
    written = run_on_development_photos("bench_framing.py", ["--photos", "6"], tmp_path)
    rows = {line.split(" | ")[0].strip("| "): line for line in written.splitlines() if line.startswith("| ")}
    resized = rows["resized to 80 % (same content; baseline)"].strip("| ").split(" | ")
    assert len(resized) == 7 and resized[3] == "1.00x" and resized[6] == "1.00x"  # the baseline, both sets
    assert float(resized[1]) > 0.85 and float(resized[4]) > 0.85  # same content, fewer pixels: nearly itself
    assert "cut 10 % wider, flat grey wall" in rows and "reference: two photos of one person" in rows


def test_the_face_frame_benchmark_runs_as_a_script(tmp_path):
    written = run_on_development_photos("bench_face_frame.py", ["--photos", "8"], tmp_path)
    rows = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ") for line in written.splitlines() if line.startswith("| ")}
    boxed = rows["OpenCV face box x 2.2, where found"]
    assert int(boxed[1]) >= 6  # LFW photos are frontal faces: the box is found for nearly all of them
    assert abs(float(boxed[2])) < 0.1 and float(boxed[7]) > 0.8  # the widened box is nearly the photo itself
    assert "keypoints (eyes and mouth), every face" in rows


def test_the_people_benchmarks_ratio_interval_draws_people_with_all_their_queries(monkeypatch):
    import numpy as np

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_people import ratio_interval

    people = np.repeat(np.arange(40), 3)
    crop = np.ones(len(people))
    # Every query right in both searches: every draw gives 1.0.
    assert ratio_interval(crop, crop, people, seed=0) == (1.0, 1.0)
    # Half the people lost in the scene search: the ratio is 0.5, the interval holds it and has width.
    scene = (people % 2 == 0).astype(float)
    low, high = ratio_interval(scene, crop, people, seed=0)
    assert low < 0.5 < high and high - low < 0.4
    # Queries of one person move together: an interval over people is wider than one over queries.
    per_query = ratio_interval(scene, crop, np.arange(len(people)), seed=0)
    assert high - low > per_query[1] - per_query[0]


def test_the_difference_table_shows_each_figure_and_its_difference_to_the_baseline(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from markdown_report import difference_table

    rows = {"as shipped": {"rank-1": 0.393, "TAR": 0.313}, "mean removed": {"rank-1": 0.389, "TAR": 0.327}}
    assert difference_table("map", rows, "as shipped") == [
        "| map | rank-1 | TAR |",
        "| --- | ---: | ---: |",
        "| as shipped | 39.3 | 31.3 |",
        "| mean removed | 38.9 (-0.4) | 32.7 (+1.4) |",
    ]


def test_the_group_compare_benchmark_draws_different_people_or_one_shared_person_from_another_photo(monkeypatch):
    import numpy as np

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_group_compare import draw_groups

    labels = np.repeat([f"p{index}" for index in range(12)], 4)  # 12 people, 4 photos each: 2 a camera
    cameras = np.tile([0, 0, 1, 1], 12)
    people = {label: np.flatnonzero(labels == label) for label in np.unique(labels)}
    rng = np.random.default_rng(0)
    for shared in (False, True):
        for _ in range(50):
            first, second = draw_groups(rng, people, cameras, 3, shared, cross_camera=True)
            assert len(set(labels[first])) == 3 and len(set(labels[second])) == 3  # one photo a person
            common = set(labels[first]) & set(labels[second])
            assert common == ({labels[first[0]]} if shared else set())
            assert (cameras[first] == 0).all() and (cameras[second] == 1).all()  # A from camera 0, B from 1
            if shared:
                assert labels[second[0]] == labels[first[0]] and second[0] != first[0]  # another photo of them


def test_the_small_person_benchmark_pastes_the_photo_to_cover_the_share_asked(monkeypatch, tmp_path):
    import random

    import numpy as np
    from PIL import Image

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_small_person import pasted

    photo = np.random.default_rng(0).integers(0, 256, (120, 60, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    for share in (0.15, 0.45, 0.8):
        picture = pasted(str(path), share, random.Random(0))
        assert picture.shape[0] * picture.shape[1] * share == pytest.approx(120 * 60, rel=0.03)
        # The photo is in it, whole and unchanged, somewhere.
        found = [(top, left) for top in range(picture.shape[0] - 119) for left in range(picture.shape[1] - 59)
                 if np.array_equal(picture[top, left : left + 60], photo[0])]  # fmt: skip
        assert any(np.array_equal(picture[top : top + 120, left : left + 60], photo) for top, left in found)


def test_the_far_holdout_benchmark_keeps_each_person_in_one_half_and_reads_an_honest_curve_at_one(monkeypatch):
    import numpy as np

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_far_holdout import holdout_ratios, observed_far, split_people

    labels = np.repeat(np.arange(60), 4)
    first, second = split_people(labels, np.random.default_rng(0))
    assert (first ^ second).all() and first.sum() == second.sum() == 120
    assert not set(labels[first]) & set(labels[second])  # a person's photos stay in one half
    assert observed_far(np.array([0.1, 0.2, 0.3, 0.4]), 0.3) == 0.5  # at or above the threshold
    # People drawn from one distribution: a half's curve promises what the other half gives, on average.
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(60, 32))
    embeddings = centres[labels] + rng.normal(size=(len(labels), 32))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    ratios = holdout_ratios(embeddings, labels, splits=20, seed=0)
    assert len(ratios[0.1]) == 40 and 0.85 < np.median(ratios[0.1]) < 1.15
    assert ratios[0.001] == []  # about 7,000 pairs a half cannot measure 0.1 % with 10 pairs passing
    # Half the people unlike the others (another scene): which of them a half draws moves its curve, so
    # the readings spread far wider than among people all alike.
    mixed = embeddings.copy()
    mixed[labels % 2 == 0] = np.abs(mixed[labels % 2 == 0])
    spread = [np.percentile(values[0.1], 90) - np.percentile(values[0.1], 10)
              for values in (ratios, holdout_ratios(mixed, labels, splits=20, seed=0))]  # fmt: skip
    assert spread[1] > 3 * spread[0]
