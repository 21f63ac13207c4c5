"""`sapiensid push` / `examples/train.py --push_to_hub`: only the model's files go, with a card the Hub reads."""

from __future__ import annotations

import shutil

import huggingface_hub
import pytest
from conftest import REPO_ROOT
from huggingface_hub import ModelCard

from sapiensid_cli import main as sapiensid
from sapiensid_hf.hub_push import PushError, missing_code_files, push_model_folder

# A public-dev results.json in the shape `sapiensid evaluate --benchmark public-dev` writes.
RESULTS = {
    "models": {
        "my_model": {
            "cuhk03_val": {"cam0_to_cam1": {"rank1": 0.40, "mAP": 0.30}, "cam1_to_cam0": {"rank1": 0.30, "mAP": 0.20}},
            "conreid": {"query_to_gallery": {"rank1": 0.75, "mAP": 0.5}},
            "lfw_fold7": {"pairs": {"accuracy": 0.8, "tar@far=0.01": 0.25}},
        },
        "untrained (same shape)": {
            "cuhk03_val": {"cam0_to_cam1": {"rank1": 0.02, "mAP": 0.02}, "cam1_to_cam0": {"rank1": 0.02, "mAP": 0.02}},
            "conreid": {"query_to_gallery": {"rank1": 0.5, "mAP": 0.3}},
            "lfw_fold7": {"pairs": {"accuracy": 0.55, "tar@far=0.01": 0.02}},
        },
    }
}
MODEL_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_sapiensid.py", "configuration_sapiensid.py"}


@pytest.fixture
def run_output(tmp_path, trained_tiny_model_dir):
    """A training run's output folder: final_model/ beside checkpoints, logs and other files."""
    run = tmp_path / "run"
    final = run / "final_model"
    shutil.copytree(trained_tiny_model_dir, final)
    (run / "checkpoints" / "step_00000002").mkdir(parents=True)
    (run / "checkpoints" / "step_00000002" / "model.safetensors").write_bytes(b"optimizer and all")
    (run / "logs").mkdir()
    (run / "train_log.jsonl").write_text("{}\n")
    (run / "config.json").write_text("{}")
    (final / "notes.txt").write_text("private notes")
    (final / "events.out.tfevents.1").write_bytes(b"log")
    return run


@pytest.fixture
def recorded_uploads(monkeypatch):
    uploads = []

    class RecordingApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            uploads.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            uploads.append(("upload_folder", kwargs["repo_id"], kwargs))

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    return uploads


def test_a_dry_run_lists_the_model_files_and_changes_nothing(run_output, capsys):
    final = run_output / "final_model"
    before = sorted(path.name for path in final.iterdir())
    assert sapiensid(["push", str(final), "me/sapiensid-mine", "--dry-run"]) == 0
    listed = {line.strip() for line in capsys.readouterr().out.splitlines()[1:]}
    assert MODEL_FILES | {"README.md"} <= listed
    assert not listed & {"notes.txt", "events.out.tfevents.1", "checkpoints", "train_log.jsonl"}
    assert all(name.endswith((".json", ".safetensors", ".py", ".md")) for name in listed)
    assert sorted(path.name for path in final.iterdir()) == before  # no card written in a dry run


def test_a_push_uploads_the_model_files_with_a_card_the_hub_reads(run_output, recorded_uploads):
    final = run_output / "final_model"
    plan = push_model_folder(final, "me/sapiensid-mine", results=RESULTS)
    (create, upload) = recorded_uploads
    assert create[:2] == ("create_repo", "me/sapiensid-mine") and create[2]["exist_ok"]
    uploaded = set(upload[2]["allow_patterns"])
    assert uploaded == set(plan.files) and MODEL_FILES | {"README.md"} <= uploaded
    assert "notes.txt" not in uploaded and upload[2]["folder_path"] == str(final)
    card = ModelCard.load(final / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-feature-extraction"
    assert card.data.license == "other" and card.data.license_name == "research-only-training-data"
    values = {(result.dataset_type, result.metric_type): result.metric_value for result in card.data.eval_results}
    # The model's own rows (not the untrained baseline's), in percent, both camera directions averaged.
    assert values == {
        ("cuhk03_val", "rank-1"): 35.0, ("cuhk03_val", "mAP"): 25.0, ("conreid", "rank-1"): 75.0,
        ("conreid", "mAP"): 50.0, ("lfw_fold7", "accuracy"): 80.0, ("lfw_fold7", "tar@far=0.01"): 25.0,
    }  # fmt: skip
    assert "| lfw_fold7 pairs | accuracy (%) | 80.0 | 55.0 |" in card.text


def test_a_card_names_the_training_data_and_the_teacher(run_output, recorded_uploads):
    import json

    final = run_output / "final_model"
    config = json.loads((final / "config.json").read_text())
    config["training"].update(
        data="manifest:../shared/data/identities/manifest.csv", teacher="dlib_resnet_v1",
        unlabelled_photos="../shared/data/faces/manifest.csv", steps=10, seed=0,
    )  # fmt: skip
    (final / "config.json").write_text(json.dumps(config))
    push_model_folder(final, "me/sapiensid-mine")
    card = ModelCard.load(final / "README.md")
    assert {"CUHK03 (labeled)", "Con-ReID", "LFW (deep-funneled)", "FFHQ"} <= set(card.data.datasets)
    assert [teacher["id"] for teacher in card.data.to_dict()["teachers"]] == ["dlib_resnet_v1"]
    assert card.data.eval_results is None and "Not run yet" in card.text
    # A folder's own card is kept when no results are given.
    (final / "README.md").write_text("---\nlicense: mit\n---\n# my own card\n")
    assert push_model_folder(final, "me/sapiensid-mine").card == "kept"
    assert (final / "README.md").read_text().endswith("# my own card\n")


def test_what_cannot_be_pushed_is_refused_by_name(run_output, tmp_path):
    with pytest.raises(PushError, match="a training run's output folder; push its model folder"):
        push_model_folder(run_output, "me/x", dry_run=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PushError, match="no config.json"):
        push_model_folder(empty, "me/x", dry_run=True)
    final = run_output / "final_model"
    (final / "model.safetensors").unlink()
    with pytest.raises(PushError, match="no model.safetensors"):
        push_model_folder(final, "me/x", dry_run=True)
    with pytest.raises(ValueError, match="no results for model 'other'"):
        from sapiensid_hf.model_card import model_index_results

        model_index_results(RESULTS, "other")


def test_a_folder_missing_a_code_file_its_code_imports_is_refused(tmp_path):
    # trust_remote_code would fail on the Hub; the shipped folder is complete, a copy without one file is not.
    shipped = REPO_ROOT / "pretrained" / "sapiensid-small"
    assert missing_code_files(shipped) == []
    folder = shutil.copytree(shipped, tmp_path / "model")
    (folder / "cut_averaging.py").unlink()
    with pytest.raises(PushError, match=r"modeling_sapiensid.py needs cut_averaging.py, so trust_remote_code could not load it"):
        push_model_folder(folder, "me/x", dry_run=True)


def test_train_py_pushes_the_final_model_at_the_end(run_output, recorded_uploads, monkeypatch, capsys):
    import importlib.util

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("train_script", REPO_ROOT / "examples" / "train.py")
    train_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_script)
    assert train_script.parse_args(["--config", "c.yaml", "--push_to_hub", "me/x"]).push_to_hub == "me/x"
    assert train_script._push(run_output / "final_model", "me/x") == 0
    assert [call[0] for call in recorded_uploads] == ["create_repo", "upload_folder"]
    # A failed upload keeps the trained model and says how to retry.
    assert train_script._push(run_output, "me/x") == 1
    assert f"retry with: sapiensid push {run_output} me/x" in capsys.readouterr().err
