"""The evaluation runner end to end with a tiny random model: files, cache, protocols, CLI entry."""

import io
import json
import pickle

import numpy as np
import pytest
from model_inputs import full_body
from PIL import Image

from sapiensid_cli import main as cli_main
from sapiensid_hf.evaluation import rerank as rerank_module
from sapiensid_hf.evaluation.benchmark_specs import get_benchmark
from sapiensid_hf.evaluation.distance import distance_matrix
from sapiensid_hf.evaluation.ranking import evaluate_ranking
from sapiensid_hf.evaluation.rerank import rerank_embeddings
from sapiensid_hf.evaluation.runner import main, run_evaluation
from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_detector import KeypointResult


class StandingPersonDetector:
    """Keypoint detector stand-in: one person standing in the middle of every image (no model files)."""

    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        box = np.array([[0.3, 0.05, 0.7, 0.95]], dtype=np.float32)
        return KeypointResult(full_body().numpy(), box, chosen_person=0, source="pose")


class NobodyInSomeDetector(StandingPersonDetector):
    """Finds nobody in the image of identity 3 (its colour has almost no green), the person elsewhere."""

    def detect(self, image):
        pixels = np.asarray(image)
        if ((pixels[..., 1] < 30) & (pixels[..., 2] > 60)).mean() > 0.1:
            self.calls += 1
            return KeypointResult(np.full((19, 2), -1.0, np.float32), np.zeros((0, 4), np.float32), source="none")
        return super().detect(image)


class FailingDetector:
    def detect(self, image):
        raise AssertionError("the embedding cache should have been used")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_model")
    SapiensIDModel(SapiensIDConfig.tiny()).save_pretrained(folder)
    return folder


def processor_with(detector):
    processor = SapiensIDImageProcessor(size=96)
    processor.detector = detector
    return processor


def picture(value: int, size=(24, 48)) -> Image.Image:
    """A colour per identity with a left-to-right ramp, so the mirror image differs."""
    width, height = size
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    base = np.array([value * 37 % 256, value * 91 % 256, value * 53 % 256], dtype=np.float32)
    pixels = np.broadcast_to(base * (0.3 + 0.7 * ramp), (height, width, 3))
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.fixture
def market_root(tmp_path):
    root = tmp_path / "market"
    names = {
        "query": ["0001_c1s1_000001_00.jpg", "0002_c2s1_000001_00.jpg"],
        "bounding_box_test": [
            "0001_c2s1_000002_01.jpg",
            "0002_c3s1_000002_01.jpg",
            "0003_c1s1_000003_01.jpg",
        ],
    }
    for folder, files in names.items():
        (root / folder).mkdir(parents=True)
        for name in files:
            picture(int(name[:4])).save(root / folder / name)
    return root


def test_market1501_run_writes_tables_plots_and_reuses_the_cache(tiny_model, market_root, tmp_path):
    detector = StandingPersonDetector()
    out = tmp_path / "out"
    results = run_evaluation(
        tiny_model, market_root, "market1501", out, batch_size=2, processor=processor_with(detector),
        datasets_cache_dir=tmp_path / "hf",
    )  # fmt: skip
    overall = results["rankings"]["overall"]
    assert (overall["num_queries"], overall["num_gallery"], overall["num_valid_queries"]) == (2, 3, 2)
    assert 0 <= overall["mAP"] <= 1 and len(overall["cmc"]) == 3
    assert detector.calls == 5  # flip mirrors pixels and keypoints: no second detector pass
    assert json.loads((out / "results.json").read_text())["rankings"]["overall"]["mAP"] == overall["mAP"]
    table = (out / "results.md").read_text()
    assert "| overall | market1501 | 2 (2) | 3 |" in table
    # rank-1 and mAP with their intervals over the query people (2 queries of 2 people here).
    assert results["intervals"] == {"level": 0.95, "resamples": 1000, "seed": 0}
    for metric in ("rank1", "mAP"):
        low, high = overall["intervals"][metric]
        assert 0.0 <= low <= overall[metric] <= high <= 1.0
    low, high = overall["intervals"]["rank1"]
    assert f"| {100 * overall['rank1']:.2f} ({100 * low:.2f}-{100 * high:.2f}) |" in table
    assert "In brackets: 95 % intervals, percentile bootstrap of 1000 draws (seed 0)" in table
    assert (out / "cmc.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "embeddings").glob("*.npz"))) == 1

    again = run_evaluation(
        tiny_model, market_root, "market1501", out, batch_size=2, processor=processor_with(FailingDetector()),
        datasets_cache_dir=tmp_path / "hf",
    )  # fmt: skip
    assert again["rankings"] == results["rankings"]


def test_an_image_replaced_in_place_is_embedded_again(tiny_model, market_root, tmp_path):
    out = tmp_path / "out"
    kwargs = dict(batch_size=2, processor=processor_with(StandingPersonDetector()), datasets_cache_dir=tmp_path / "hf")
    run_evaluation(tiny_model, market_root, "market1501", out, **kwargs)
    # Same file name, other pixels: the listing is unchanged, the photo is not.
    replaced = market_root / "bounding_box_test" / "0001_c2s1_000002_01.jpg"
    picture(3).save(replaced)
    run_evaluation(tiny_model, market_root, "market1501", out, **kwargs)
    assert len(list((out / "embeddings").glob("*.npz"))) == 2  # a new key, not the stale file
    cached = [np.load(p)["embeddings"] for p in sorted((out / "embeddings").glob("*.npz"))]
    assert not np.allclose(cached[0], cached[1])


def test_flip_changes_the_embedding_and_no_flip_is_cached_separately(tiny_model, market_root, tmp_path):
    out = tmp_path / "out"
    kwargs = dict(
        batch_size=4, processor=processor_with(StandingPersonDetector()), datasets_cache_dir=tmp_path / "hf"
    )
    with_flip = run_evaluation(tiny_model, market_root, "market1501", out, **kwargs)
    without = run_evaluation(tiny_model, market_root, "market1501", out, flip=False, **kwargs)
    assert len(list((out / "embeddings").glob("*.npz"))) == 2
    cached = [np.load(p)["embeddings"] for p in sorted((out / "embeddings").glob("*.npz"))]
    assert not np.allclose(cached[0], cached[1])
    assert with_flip["flip"] and not without["flip"]


def test_verification_run_with_a_bin_file(tiny_model, tmp_path):
    images = []
    is_same = [pair % 2 == 0 for pair in range(10)]  # 10 pairs: one per fold
    for pair, same in enumerate(is_same):
        for side in range(2):
            buffer = io.BytesIO()
            picture(pair if same else 2 * pair + side, size=(20, 20)).save(buffer, format="JPEG")
            images.append(buffer.getvalue())
    (tmp_path / "tiny_lfw.bin").write_bytes(pickle.dumps((images, is_same)))
    results = run_evaluation(
        tiny_model, tmp_path / "tiny_lfw.bin", "verification", tmp_path / "out", batch_size=4,
        processor=processor_with(StandingPersonDetector()), datasets_cache_dir=tmp_path / "hf",
    )  # fmt: skip
    verification = results["verification"]
    assert results["standing_person_prior"] is False  # face pairs are not person crops
    assert verification["num_pairs"] == 10
    assert 0 <= verification["accuracy"] <= 1 and "tar@far=0.1" in verification
    assert set(verification["intervals"]) == {"accuracy"} | {key for key in verification if key.startswith("tar@far=")}
    for metric, (low, high) in verification["intervals"].items():
        assert 0.0 <= low <= high <= 1.0, metric
    assert (tmp_path / "out" / "roc.png").is_file()
    assert "| 10 |" in (tmp_path / "out" / "results.md").read_text()


def test_cli_entry_rejects_unknown_benchmarks(capsys):
    with pytest.raises(SystemExit):
        main(["--model", "m", "--dataset-root", "d", "--benchmark", "duke"])
    assert "invalid choice: 'duke'" in capsys.readouterr().err


def test_no_valid_query_says_why_in_the_table_and_fails_the_command(tiny_model, tmp_path, monkeypatch, capsys):
    import sapiensid_hf.evaluation.runner as runner

    root = tmp_path / "market"
    for folder, files in {"query": ["0001_c1s1_000001_00.jpg"], "bounding_box_test": ["0001_c1s1_000002_01.jpg", "0002_c1s1_000003_01.jpg"]}.items():
        (root / folder).mkdir(parents=True)
        for name in files:
            picture(int(name[:4])).save(root / folder / name)
    # The only true match shares the query's camera: the Market-1501 rule leaves no valid query.
    results = run_evaluation(
        tiny_model, root, "market1501", tmp_path / "out", batch_size=2, processor=processor_with(StandingPersonDetector()),
        datasets_cache_dir=tmp_path / "hf",
    )  # fmt: skip
    table = runner.markdown_table(results)
    assert "not scored (see below)" in table and "Not scored:" in table and "no query has a valid true match" in table
    monkeypatch.setattr(runner, "run_evaluation_from_args", lambda args: results)
    assert runner.main(["--model", str(tiny_model), "--dataset-root", str(root), "--benchmark", "market1501"]) == 1
    assert "Not scored:" in capsys.readouterr().out


def test_the_results_say_how_many_benchmark_photos_have_nobody_in_them(tiny_model, market_root, tmp_path):
    out = tmp_path / "out"
    kwargs = dict(batch_size=2, datasets_cache_dir=tmp_path / "hf", standing_person_prior=False)
    results = run_evaluation(tiny_model, market_root, "market1501", out, processor=processor_with(NobodyInSomeDetector()), **kwargs)
    # Identity 3 has one gallery photo and no query.
    assert results["photos_without_person"] == {"query": {"count": 0, "of": 2}, "gallery": {"count": 1, "of": 3}}
    assert results["standing_person_prior"] is False
    assert json.loads((out / "results.json").read_text())["photos_without_person"] == results["photos_without_person"]
    assert "found nobody: query 0 of 2, gallery 1 of 3; scored, but every such photo gets the same embedding." in (
        out / "results.md"
    ).read_text()
    # The count is cached with the embeddings: a second run reads it without the detector.
    again = run_evaluation(tiny_model, market_root, "market1501", out, processor=processor_with(FailingDetector()), **kwargs)
    assert again["photos_without_person"] == results["photos_without_person"]


def test_reid_crops_without_a_person_get_the_standing_person_prior_by_default(tiny_model, market_root, tmp_path):
    kwargs = dict(batch_size=2, datasets_cache_dir=tmp_path / "hf")
    processor = processor_with(NobodyInSomeDetector())
    results = run_evaluation(tiny_model, market_root, "market1501", tmp_path / "prior", processor=processor, **kwargs)
    assert results["standing_person_prior"] is True and processor.standing_person_prior is False  # a copy was set
    assert results["photos_without_person"] == {"query": {"count": 0, "of": 2}, "gallery": {"count": 1, "of": 3}}
    assert "gallery 1 of 3; scored with the keypoints of a standing person filling the crop" in (
        tmp_path / "prior" / "results.md"
    ).read_text()
    without = run_evaluation(
        tiny_model, market_root, "market1501", tmp_path / "none", processor=processor, standing_person_prior=False, **kwargs
    )
    assert without["standing_person_prior"] is False
    # The prior changes that gallery photo's embedding, and only it.
    prior, none = (np.load(next((tmp_path / run / "embeddings").glob("*.npz"))) for run in ("prior", "none"))
    assert prior["keypoint_prior"].sum() == 1 and not none["keypoint_prior"].any()
    assert prior["person_found"].all() and none["person_found"].sum() == 4
    changed = ~np.isclose(prior["embeddings"], none["embeddings"], atol=1e-6).all(axis=1)
    assert changed.tolist() == prior["keypoint_prior"].tolist()


def reference_rankings(root, cache_dir, embeddings_file):
    """The market fixture's plain and re-ranked rankings, from the embeddings the run cached."""
    dataset = get_benchmark("market1501").load(root, str(cache_dir))
    roles, pids, camids = (np.asarray(dataset[column]) for column in ("role", "pid", "camid"))
    embeddings = np.load(embeddings_file)["embeddings"]
    q, g = roles == "query", roles == "gallery"
    args = (pids[q], pids[g], camids[q], camids[g])
    plain = evaluate_ranking(distance_matrix(embeddings[q], embeddings[g]).numpy(), *args, max_rank=50)
    reranked = evaluate_ranking(rerank_embeddings(embeddings[q], embeddings[g]), *args, max_rank=50)
    return plain, reranked


def test_a_run_with_rerank_reports_both_rankings(tiny_model, market_root, tmp_path):
    out, hf = tmp_path / "out", tmp_path / "hf"
    options = dict(batch_size=2, datasets_cache_dir=hf)
    plain_run = run_evaluation(tiny_model, market_root, "market1501", out, processor=processor_with(StandingPersonDetector()), **options)
    both = run_evaluation(tiny_model, market_root, "market1501", out, processor=processor_with(StandingPersonDetector()), rerank=True, **options)
    assert both["rankings"] == plain_run["rankings"] and plain_run["rerank"] is None
    assert both["rerank"] == {"k1": 20, "k2": 6, "lambda_value": 0.3}
    (embeddings_file,) = (out / "embeddings").glob("*.npz")
    plain, reranked = reference_rankings(market_root, hf, embeddings_file)
    assert both["rankings"]["overall"]["mAP"] == pytest.approx(plain.mAP)
    row = both["rankings_reranked"]["overall"]
    assert row["mAP"] == pytest.approx(reranked.mAP) and row["cmc"] == pytest.approx(reranked.cmc.tolist())
    assert (row["num_queries"], row["num_gallery"]) == (2, 3)
    table = (out / "results.md").read_text()
    assert "After k-reciprocal re-ranking (Zhong et al. 2017; k1 20, k2 6, lambda 0.3):" in table
    assert table.count("| overall | market1501 | 2 (2) | 3 |") == 2


def test_rerank_is_refused_before_anything_is_embedded(tiny_model, market_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rerank_module, "available_memory_bytes", lambda: 100)  # 5 photos need 700 bytes
    command = ["evaluate", "--model", str(tiny_model), "--benchmark", "market1501", "--dataset-root", str(market_root),
               "--output-dir", str(tmp_path / "out"), "--rerank"]  # fmt: skip
    assert cli_main(command) == 1
    message = capsys.readouterr().err
    assert "re-ranking 2 queries and 3 gallery images needs about 0.0 GiB" in message and "without --rerank" in message
    assert not (tmp_path / "out" / "embeddings").exists()  # refused before the embedding, which takes hours at scale
    with pytest.raises(ValueError, match="verification benchmark has pairs, not a gallery"):
        run_evaluation(tiny_model, tmp_path / "lfw.bin", "verification", tmp_path / "out", rerank=True)


def test_the_evaluate_example_prints_both_rankings(tiny_model, market_root, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from detector_files import require_detector_files

    require_detector_files()
    example = Path(__file__).resolve().parents[1] / "examples" / "evaluate.py"
    done = subprocess.run(
        [sys.executable, str(example), "--model", str(tiny_model), "--dataset-root", str(market_root),
         "--benchmark", "market1501", "--output-dir", str(tmp_path / "out"), "--rerank"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    for label, row in (("overall", written["rankings"]["overall"]), ("overall, re-ranked", written["rankings_reranked"]["overall"])):
        (low, high), (map_low, map_high) = row["intervals"]["rank1"], row["intervals"]["mAP"]
        assert (
            f"{label}: rank-1 {100 * row['rank1']:.2f} ({100 * low:.2f}-{100 * high:.2f})  "
            f"mAP {100 * row['mAP']:.2f} ({100 * map_low:.2f}-{100 * map_high:.2f})"
        ) in done.stdout
    assert "(in brackets: 95 % intervals over the query people / the pairs" in done.stdout
