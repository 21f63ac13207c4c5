"""The local `evaluate` modules load with `evaluate.load(<path>)` and give the function results."""

import evaluate
import numpy as np
import pytest

from sapiensid_hf.evaluation import (
    EVALUATE_MODULES,
    distance_matrix,
    evaluate_ranking,
    metric_path,
    tar_at_far,
    verification_accuracy,
)


@pytest.fixture(scope="module")
def reid_data():
    rng = np.random.default_rng(0)
    return {
        "query_embeddings": rng.standard_normal((30, 8)).astype(np.float32),
        "query_pids": rng.integers(0, 6, 30),
        "query_camids": rng.integers(0, 3, 30),
        "query_clothes_ids": rng.integers(0, 3, 30),
        "gallery_embeddings": rng.standard_normal((90, 8)).astype(np.float32),
        "gallery_pids": rng.integers(0, 6, 90),
        "gallery_camids": rng.integers(0, 3, 90),
        "gallery_clothes_ids": rng.integers(0, 3, 90),
    }


def test_every_module_folder_holds_its_script():
    for name in EVALUATE_MODULES:
        assert (metric_path(name) + f"/{name}.py").endswith(f"metrics/{name}/{name}.py")
    with pytest.raises(ValueError, match="unknown metric"):
        metric_path("bleu")


def test_reid_ranking_module_in_batches_equals_evaluate_ranking(reid_data):
    metric = evaluate.load(metric_path("reid_ranking"))
    for start in (0, 10, 20):  # queries arrive in batches
        rows = slice(start, start + 10)
        metric.add_batch(
            query_embeddings=reid_data["query_embeddings"][rows],
            query_pids=reid_data["query_pids"][rows],
            query_camids=reid_data["query_camids"][rows],
        )
    result = metric.compute(
        gallery_embeddings=reid_data["gallery_embeddings"],
        gallery_pids=reid_data["gallery_pids"],
        gallery_camids=reid_data["gallery_camids"],
    )
    dist = distance_matrix(reid_data["query_embeddings"], reid_data["gallery_embeddings"])
    expected = evaluate_ranking(
        dist,
        reid_data["query_pids"],
        reid_data["gallery_pids"],
        reid_data["query_camids"],
        reid_data["gallery_camids"],
    ).to_dict()
    assert result == pytest.approx(expected)


def test_cc_reid_ranking_module_reports_general_sc_and_cc(reid_data):
    metric = evaluate.load(metric_path("cc_reid_ranking"))
    result = metric.compute(**reid_data)
    dist = distance_matrix(reid_data["query_embeddings"], reid_data["gallery_embeddings"])
    ids = [
        reid_data[k]
        for k in (
            "query_pids",
            "gallery_pids",
            "query_camids",
            "gallery_camids",
            "query_clothes_ids",
            "gallery_clothes_ids",
        )
    ]
    for protocol in ("general", "sc", "cc"):
        expected = evaluate_ranking(dist, *ids, protocol=protocol)
        assert result[f"{protocol}_mAP"] == pytest.approx(expected.mAP)
        assert result[f"{protocol}_rank1"] == pytest.approx(expected.cmc[0])


def test_face_verification_module_equals_the_functions():
    rng = np.random.default_rng(1)
    first = rng.standard_normal((100, 4))
    second = rng.standard_normal((100, 4))
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second /= np.linalg.norm(second, axis=1, keepdims=True)
    same = rng.random(100) < 0.5
    result = evaluate.load(metric_path("face_verification")).compute(
        embeddings1=first, embeddings2=second, is_same=same
    )
    expected = verification_accuracy(first, second, same)
    assert result["accuracy"] == expected.accuracy
    assert result["accuracy_std"] == expected.accuracy_std
    assert result["tar@far=0.1"] == tar_at_far(same, np.sum(first * second, -1))[0.1]


def test_tar_at_far_module_uses_predictions_and_references():
    scores = [0.9, 0.85, 0.8, 0.3, 0.2, 0.1, 0.05]
    labels = [1, 0, 1, 1, 0, 0, 0]
    result = evaluate.load(metric_path("tar_at_far")).compute(
        predictions=scores, references=labels, fars=(0.25,)
    )
    assert result == {"tar@far=0.25": 1.0}
