"""`sapiensid evaluate --rerank`: k-reciprocal re-ranking reported beside the plain rankings."""

import numpy as np
import pytest
import torch
from test_eval_public_dev import SquareCentreDetector, identities  # noqa: F401 (a fixture)
from test_eval_runner import StandingPersonDetector, market_root, processor_with, tiny_model  # noqa: F401

from sapiensid_cli import main as cli_main
from sapiensid_hf.evaluation import rerank as rerank_module
from sapiensid_hf.evaluation.benchmark_specs import get_benchmark
from sapiensid_hf.evaluation.distance import distance_matrix, l2_normalize
from sapiensid_hf.evaluation.public_dev import run_dev_checks
from sapiensid_hf.evaluation.ranking import evaluate_ranking
from sapiensid_hf.evaluation.rerank import (
    DEFAULT_RERANK,
    RerankMemoryError,
    k_reciprocal_rerank,
    rerank_embeddings,
)
from sapiensid_hf.evaluation.runner import run_evaluation
from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor


def test_rerank_embeddings_is_the_reference_on_torchreids_distance_of_unit_embeddings():
    generator = np.random.default_rng(0)
    query, gallery = generator.normal(size=(7, 16)), generator.normal(size=(30, 16))
    unit_q, unit_g = l2_normalize(query), l2_normalize(gallery)
    expected = k_reciprocal_rerank(
        *(distance_matrix(a, b, "euclidean").numpy() for a, b in ((unit_q, unit_g), (unit_q, unit_q), (unit_g, unit_g))),
        **DEFAULT_RERANK,
    )  # fmt: skip
    result = rerank_embeddings(query, gallery)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    # Only the direction of an embedding counts, as for the cosine the plain ranking uses.
    scales = generator.uniform(0.5, 3.0, size=(37, 1))
    np.testing.assert_allclose(rerank_embeddings(query * scales[:7], gallery * scales[7:]), expected, atol=1e-5)
    assert not np.allclose(result, rerank_embeddings(query, gallery, k1=3, k2=2))  # the settings are used


def test_rerank_refuses_a_set_whose_matrices_would_not_fit(monkeypatch):
    monkeypatch.setattr(rerank_module, "available_memory_bytes", lambda: 2**30)
    rerank_module.check_rerank_memory(100, 5000)  # 0.9 GiB: fits
    with pytest.raises(RerankMemoryError, match=r"re-ranking 3368 queries and 15913 gallery images needs about 12\.5 GiB .* 1\.0 GiB is free"):
        rerank_embeddings(np.ones((3368, 4)), np.ones((15913, 4)))


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


def test_a_run_with_rerank_reports_both_rankings(tiny_model, market_root, tmp_path):  # noqa: F811
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


def test_rerank_is_refused_before_anything_is_embedded(tiny_model, market_root, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr(rerank_module, "available_memory_bytes", lambda: 100)  # 5 photos need 700 bytes
    command = ["evaluate", "--model", str(tiny_model), "--benchmark", "market1501", "--dataset-root", str(market_root),
               "--output-dir", str(tmp_path / "out"), "--rerank"]  # fmt: skip
    assert cli_main(command) == 1
    message = capsys.readouterr().err
    assert "re-ranking 2 queries and 3 gallery images needs about 0.0 GiB" in message and "without --rerank" in message
    assert not (tmp_path / "out" / "embeddings").exists()  # refused before the embedding, which takes hours at scale
    with pytest.raises(ValueError, match="verification benchmark has pairs, not a gallery"):
        run_evaluation(tiny_model, tmp_path / "lfw.bin", "verification", tmp_path / "out", rerank=True)


def test_public_dev_with_rerank_adds_re_ranked_rows_and_keeps_the_plain_figures(identities, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    config = SapiensIDConfig.tiny()
    processor = SapiensIDImageProcessor.from_model_config(config, detector=SquareCentreDetector())
    models = {"tiny": (SapiensIDModel(config), processor)}
    cache = tmp_path / "keypoints"
    plain = run_dev_checks(models, identities, tmp_path / "plain", cache, batch_size=4, num_workers=0)
    both = run_dev_checks(models, identities, tmp_path / "both", cache, batch_size=4, num_workers=0, rerank=True)
    assert both["models"] == plain["models"] and "reranked" not in plain
    reranked = both["reranked"]["tiny"]
    assert set(reranked) == {"cuhk03_val", "conreid"}  # LFW fold 7 is pairs: nothing to re-rank
    assert set(reranked["cuhk03_val"]) == {"cam0_to_cam1", "cam1_to_cam0"}
    assert reranked["conreid"]["query_to_gallery"]["num_gallery"] == plain["models"]["tiny"]["conreid"]["query_to_gallery"]["num_gallery"]
    table = (tmp_path / "both" / "results.md").read_text()
    assert "| cuhk03_val cam0_to_cam1, re-ranked | rank1 (%) |" in table and "| conreid query_to_gallery, re-ranked | mAP (%) |" in table
    assert "k-reciprocal re-ranking (Zhong et al. 2017; k1 20, k2 6, lambda 0.3)" in table


def test_the_evaluate_example_prints_both_rankings(tiny_model, market_root, tmp_path):  # noqa: F811
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
        assert f"{label}: rank-1 {100 * row['rank1']:.2f}  mAP {100 * row['mAP']:.2f}" in done.stdout


def test_free_memory_is_the_containers_when_its_limit_leaves_less(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16777216 kB\nMemAvailable:    8388608 kB\n")  # 8 GiB free on the host
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    monkeypatch.setattr(rerank_module, "MEMINFO", meminfo)
    monkeypatch.setattr(rerank_module, "CGROUP_LIMITS", ((limit, usage), (tmp_path / "v1_limit", tmp_path / "v1_usage")))
    assert rerank_module.available_memory_bytes() == 8 * 2**30  # no container files: the host's figure
    limit.write_text(f"{4 * 2**30}\n")
    usage.write_text(f"{2**30}\n")
    assert rerank_module.available_memory_bytes() == 3 * 2**30  # a 4 GiB container using 1 GiB
    limit.write_text("max\n")
    assert rerank_module.available_memory_bytes() == 8 * 2**30  # a container without a limit
    meminfo.unlink()
    limit.unlink()
    assert rerank_module.available_memory_bytes() is None
