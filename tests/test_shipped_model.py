"""The model that ships in pretrained/sapiensid-small: it loads everywhere, and it still recognises people.

The accuracy floors sit a little under what the shipped weights measure on a fixed subset of the
development sets (tests/fixtures/dev_subset.json: 50 CUHK03-val people, 200 LFW fold-7 pairs, with
their detector keypoints), so a change that breaks the weights, the processor, the model code or the
metrics fails here. Photos are read from ../shared/data/identities.
"""

from __future__ import annotations

import json
from copy import deepcopy

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, SHARED_DATA
from hub_isolation import run_without_package

from sapiensid_hf.evaluation.public_dev import embed_rows_of_files, score_dev_subset
from sapiensid_hf.inference import SapiensIDPipeline, default_model_source, is_trained, load_pipeline
from sapiensid_hf.pretrained import shipped_model_dir

SHIPPED = REPO_ROOT / "pretrained" / "sapiensid-small"
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "dev_subset.json"
IDENTITIES = SHARED_DATA / "identities"
# A little under what the shipped weights measure on this subset under their embedding rule of centre
# cuts (rank-1 0.556, accuracy 0.830; full dev sets: CUHK03-val 45.8 %, LFW fold 7 84.5 %; recipe v3's CPU
# model continued on two lent GPU calls, 2026-12-04: `scripts/score_dev_subset.py pretrained/sapiensid-small`),
# so any real regression fails. The weights before read 0.568 / 0.815 (full sets 42.3 % / 81.8 %): the 50
# people and 200 pairs are noisy samples (here the subset's rank-1 fell while the full set's rose 3.5
# points); the full development sets are the figures weights are chosen on.
CUHK03_RANK1_FLOOR = 0.54
LFW_ACCURACY_FLOOR = 0.80

# Until the trained folder lands (issue: the shipped model), these tests have nothing to check.
pytestmark = pytest.mark.skipif(
    not (SHIPPED / "model.safetensors").is_file(),
    reason="pretrained/sapiensid-small has not been trained and shipped yet (docs/training.md, 'The shipped model')",
)


def test_the_shipped_folder_is_the_default_and_says_it_is_trained(monkeypatch):
    monkeypatch.delenv("SAPIENSID_MODEL", raising=False)
    assert shipped_model_dir() == SHIPPED.resolve()
    assert default_model_source() == str(SHIPPED.resolve())
    config = json.loads((SHIPPED / "config.json").read_text())
    assert config["training"]["steps"] > 0 and config["model_type"] == "sapiensid"
    assert (SHIPPED / "model.safetensors").stat().st_size <= 30_000_000
    assert (SHIPPED / "README.md").read_text().count("research") >= 1


def test_the_shipped_model_loads_without_this_package():
    stdout = run_without_package(
        f"""
        import torch
        from transformers import AutoImageProcessor, AutoModel
        model = AutoModel.from_pretrained({str(SHIPPED)!r}, trust_remote_code=True).eval()
        processor = AutoImageProcessor.from_pretrained({str(SHIPPED)!r}, trust_remote_code=True)
        keypoints = torch.full((1, 19, 2), -1.0)
        inputs = processor([torch.zeros(3, 64, 32, dtype=torch.uint8)], keypoints=keypoints, return_tensors="pt")
        with torch.no_grad():
            embedding = model(**{{k: inputs[k] for k in processor.model_input_names}}).embeddings
        assert torch.isfinite(embedding).all()
        print("ok", type(model).__module__, tuple(embedding.shape))
        """
    )
    assert "transformers_modules" in stdout and "(1, 512)" in stdout


@pytest.fixture(scope="module")
def subset():
    if not IDENTITIES.is_dir():
        pytest.skip(f"identity photos not found at {IDENTITIES}")
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def pipeline():
    loaded = load_pipeline()
    assert loaded.trained and is_trained(loaded.model.config)
    return loaded


def _embed(pipeline, rows, batch_size=64) -> np.ndarray:
    images = [str(IDENTITIES / row["path"]) for row in rows]
    keypoints = np.asarray([row["keypoints"] for row in rows], dtype=np.float32)
    return embed_rows_of_files(pipeline.model, pipeline.processor, images, keypoints, batch_size)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_shipped_model_in_half_precision_gives_the_float32_embeddings(pipeline, subset, dtype):
    # Half precision used to change which token the head's nearest-position part reads (positions closer
    # than a half-precision step): cosine down to 0.81 (bfloat16) / 0.96 (float16) on these crops.
    rows = subset["cuhk03_val"][:24]
    reference = torch.from_numpy(_embed(pipeline, rows))
    half = SapiensIDPipeline(deepcopy(pipeline.model).to(dtype), pipeline.processor, trained=True)
    similarity = (torch.from_numpy(_embed(half, rows)) * reference).sum(dim=1)
    assert similarity.min() >= 0.999, similarity.min()


@pytest.fixture(scope="module")
def subset_scores(pipeline, subset) -> dict[str, float]:
    return score_dev_subset(pipeline.model, pipeline.processor, subset, IDENTITIES)


def test_shipped_model_reidentifies_cuhk03_val_people(subset_scores, subset):
    chance = 1 / len({row["pid"] for row in subset["cuhk03_val"]})
    rank1 = subset_scores["cuhk03_subset_rank1"]
    assert rank1 >= CUHK03_RANK1_FLOOR and rank1 > 5 * chance


def test_shipped_model_verifies_lfw_fold7_pairs(subset_scores):
    accuracy = subset_scores["lfw_subset_accuracy"]
    assert accuracy >= LFW_ACCURACY_FLOOR and accuracy > 0.6


def test_the_shipped_code_files_are_the_package_code():
    # trust_remote_code users run these copies, package users run modeling/ and processing/: the two
    # must be the same code, or the same weights would give different embeddings in the two ways.
    stale = []
    for copy in sorted(SHIPPED.glob("*.py")):
        source = next((folder / copy.name for folder in (REPO_ROOT / "modeling", REPO_ROOT / "processing")
                       if (folder / copy.name).is_file()), None)  # fmt: skip
        if source is None or source.read_bytes() != copy.read_bytes():
            stale.append(copy.name)
    assert not stale, f"copy modeling/ and processing/ files over pretrained/sapiensid-small/: {stale}"
    from sapiensid_hf.hub_push import missing_code_files

    assert missing_code_files(SHIPPED) == []  # every file a copy imports is there too (trust_remote_code)


def test_the_shipped_model_is_calibrated_and_its_card_shows_the_recorded_thresholds():
    from sapiensid_hf.model_card import thresholds_section

    config = json.loads((SHIPPED / "config.json").read_text())
    record = config["calibration"]
    for kind in ("face", "body"):
        assert -1 < record[kind]["best_accuracy"] < record[kind]["far_1e-2"] < 1  # the strict one is higher
    assert record["source"].startswith("sapiensid calibrate")
    assert thresholds_section(config) in (SHIPPED / "README.md").read_text()  # the card cannot drift


def test_the_shipped_model_embeds_by_its_recorded_cuts_and_its_card_says_so(pipeline):
    from sapiensid_hf.model_card import embedding_rule_section

    config = json.loads((SHIPPED / "config.json").read_text())
    assert pipeline.embedding_cuts == (1.0, 0.95, 0.9)  # the rule its figures and thresholds were measured with
    assert embedding_rule_section(config) in (SHIPPED / "README.md").read_text()  # the card cannot drift
    assert "0.95, 0.9 of its width" in embedding_rule_section(config) and embedding_rule_section({}) == ""


def test_the_shipped_card_is_read_by_the_hub_with_its_own_development_results():
    import re

    from huggingface_hub import ModelCard

    card = ModelCard.load(SHIPPED / "README.md")
    data = card.data
    assert (data.library_name, data.pipeline_tag, data.license) == ("transformers", "image-feature-extraction", "other")
    assert data.license_name == "research-only-training-data" and "CUHK03 (labeled)" in data.datasets
    record = json.loads((SHIPPED / "config.json").read_text())["training"]
    teachers = [teacher["id"] for teacher in data.to_dict().get("teachers", [])]
    assert teachers == ([record["teacher"]] if record.get("teacher") else [])
    index = {(row.dataset_type, row.metric_type): row.metric_value for row in data.eval_results}
    # The model-index rows and the card's headline come from the same results.json, never typed by hand.
    text = " ".join(card.text.split())
    headline = {
        ("cuhk03_val", "rank-1"): r"CUHK03-val rank-1 ([\d.]+) %",
        ("lfw_fold7", "accuracy"): r"LFW fold-7 accuracy ([\d.]+) %",
        ("conreid", "rank-1"): r"Con-ReID rank-1 ([\d.]+) %",
    }
    for key, pattern in headline.items():
        assert abs(float(re.search(pattern, text).group(1)) - index[key]) <= 0.051, key


def test_the_shipped_card_tells_every_training_stage_its_record_holds():
    # Each stage that continued earlier weights records them (training.initialised_from, nested); the card
    # must say every stage's steps and the command of each continued one, never only the last stage's.
    record = json.loads((SHIPPED / "config.json").read_text())["training"]
    text = " ".join((SHIPPED / "README.md").read_text().split())
    stages = [record]
    while isinstance(record.get("initialised_from"), dict):
        stages.insert(0, record["initialised_from"]["training"])
        assert " ".join(record["initialised_from"]["command"].split()) in text
        record = stages[0]
    assert f"saw {stages[0]['steps']} steps" in text
    for stage in stages[1:]:
        assert f"then {stage['steps']:,} more on a GPU" in text


def test_the_shipped_model_records_its_grouping_threshold_with_its_measurement():
    from sapiensid_hf.clustering import recorded_clustering_threshold

    threshold, source = recorded_clustering_threshold(json.loads((SHIPPED / "config.json").read_text()))
    assert 0.3 <= threshold <= 0.9 and source.startswith("python benchmarks/bench_clustering.py")
    assert f"at {threshold:g} (" in source  # the recorded value is the one the measurement chose
