"""The shipped recipe (examples/configs/small_public.yaml) on real identity photos: same seed, same losses;
the trained folder records its training; a checkpoint exports to the same model."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, SHARED_DATA
from training_builders import reset_accelerate

from sapiensid_hf.inference import is_trained, load_pipeline
from sapiensid_hf.modeling import SapiensIDModel
from sapiensid_hf.training import TrainingConfig, train
from sapiensid_hf.training.export import export_checkpoint

RECIPE = REPO_ROOT / "examples" / "configs" / "small_public.yaml"
DISTILL_RECIPE = REPO_ROOT / "examples" / "configs" / "small_distill.yaml"
IDENTITIES = SHARED_DATA / "identities"
FACES = SHARED_DATA / "faces"


pytestmark = pytest.mark.usefixtures("fresh_accelerate")


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory):
    """24 real training photos of 6 people (3 sources) as a manifest beside the identities folder."""
    if not (IDENTITIES / "manifest.csv").is_file():
        pytest.skip(f"identity photos not found at {IDENTITIES}")
    lines = (IDENTITIES / "manifest.csv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line.split(",") for line in lines[1:]]
    chosen, per_person = [], {}
    for source, people in (("cuhk03", 2), ("conreid", 2), ("lfw", 2)):
        names = []
        for row in rows:
            if row[3] == source and row[4] == "train" and (row[1] in names or len(names) < people):
                if row[1] not in names:
                    names.append(row[1])
                if per_person.get(row[1], 0) < 4:
                    per_person[row[1]] = per_person.get(row[1], 0) + 1
                    chosen.append(",".join(row))
    manifest = tmp_path_factory.mktemp("recipe") / "manifest.csv"
    manifest.write_text("\n".join([header, *chosen]) + "\n", encoding="utf-8")
    return manifest


def recipe_config(manifest, output_dir, cache_dir, *overrides: str, recipe=RECIPE) -> TrainingConfig:
    # The recipe's model, head, masking and optimiser; only the data, the run length and the batch shrink.
    return TrainingConfig.from_file(recipe).with_overrides(
        [
            f"data.root={manifest}",
            f"data.loader_kwargs={{splits: [train], root: '{IDENTITIES}'}}",
            f"data.keypoint_cache={cache_dir}",
            f"logging.output_dir={output_dir}",
            "data.images_per_identity=2",
            "batch_size=6",
            "masking.max_batch_size=12",
            "schedule.max_steps=4",
            "schedule.warmup_steps=1",
            "logging.log_every_steps=1",
            "logging.save_every_steps=2",
            "logging.tensorboard=false",
            *overrides,
        ]
    )


def test_recipe_same_seed_repeats_the_losses_and_records_training(small_manifest, tmp_path):
    cache = tmp_path / "keypoints"
    first = train(recipe_config(small_manifest, tmp_path / "a", cache))
    reset_accelerate()
    second = train(recipe_config(small_manifest, tmp_path / "b", cache))
    losses = [[entry["loss"] for entry in run.history] for run in (first, second)]
    assert len(losses[0]) == 4 and np.isfinite(losses[0]).all()
    assert losses[0] == losses[1]  # bit-identical: same rows, augmentation, masking and initial weights
    assert [e["kept_tokens"] for e in first.history] == [e["kept_tokens"] for e in second.history]

    config = json.loads((first.final_model_dir / "config.json").read_text())
    record = config["training"]
    assert record["steps"] == 4 and record["seed"] == 0 and record["data"].startswith("manifest:")
    assert record["wall_time_s"] > 0 and "initialised_from" not in record
    times = [entry["wall_time_s"] for entry in first.history]  # the log says how fast the run stepped
    assert all(0 < a < b for a, b in zip(times, times[1:], strict=False)) and times[-1] <= record["wall_time_s"]
    model = SapiensIDModel.from_pretrained(first.final_model_dir)
    assert is_trained(model.config) and model.config.output_dim == 512 and model.config.image_size == 96
    pipeline = load_pipeline(str(first.final_model_dir))
    assert pipeline.trained and pipeline.processor.person_crop_fallback

    # The step-4 checkpoint exports to exactly the final model's weights.
    exported = export_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000004", tmp_path / "exported")
    again = SapiensIDModel.from_pretrained(exported)
    assert again.config.training["steps"] == 4 and again.config.training["checkpoint"] == "step_00000004"
    # ... with what the final model records of its run: the run's config, its processes and training time.
    assert json.loads((exported / "training_config.json").read_text()) == json.loads(
        (first.final_model_dir / "training_config.json").read_text()
    )
    assert again.config.training["num_processes"] == 1 and 0 < again.config.training["wall_time_s"] <= record["wall_time_s"]
    for (name, value), (_, other) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(value, other), name


@pytest.fixture(scope="module")
def unlabelled_faces(tmp_path_factory):
    """8 unlabelled face photos of ../shared/data/faces (3 UTKFace, 3 Caltech, 2 FFHQ) in a manifest."""
    if not (FACES / "manifest.csv").is_file():
        pytest.skip(f"face photos not found at {FACES}")
    lines = (FACES / "manifest.csv").read_text(encoding="utf-8").splitlines()
    chosen = []
    for source, count in (("utkface", 3), ("caltech", 3), ("ffhq", 2)):
        chosen += [line for line in lines[1:] if f",{source}," in line][:count]
    manifest = tmp_path_factory.mktemp("faces") / "manifest.csv"
    manifest.write_text("\n".join([lines[0], *[f"{FACES}/{line}" for line in chosen]]) + "\n", encoding="utf-8")
    return manifest


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason='the distill extra is not installed (pip install ".[distill]")')
def test_distillation_recipe_same_seed_repeats_its_losses_and_ships_no_teacher_part(small_manifest, unlabelled_faces, tmp_path):
    def config(output: str):
        return recipe_config(
            small_manifest, tmp_path / output, tmp_path / "keypoints",
            f"distill.teacher_cache={tmp_path / 'teacher'}", f"distill.unlabelled_manifest={unlabelled_faces}",
            f"distill.unlabelled_keypoint_cache={tmp_path / 'face_keypoints'}",
            f"distill.unlabelled_teacher_cache={tmp_path / 'face_teacher'}", "distill.unlabelled_batch_size=4",
            f"data.image_cache={tmp_path / 'images'}", f"distill.unlabelled_image_cache={tmp_path / 'face_images'}",
            recipe=DISTILL_RECIPE,
        )  # fmt: skip

    first = train(config("a"))
    reset_accelerate()
    second = train(config("b"))
    for name in ("loss", "distill_cosine", "distill_relation"):
        values = [[entry[name] for entry in run.history] for run in (first, second)]
        assert len(values[0]) == 4 and np.isfinite(values[0]).all(), name
        assert values[0] == values[1], name  # bit-identical, the unlabelled stream included
    assert all(0 < entry["distill_cosine"] <= 2 for entry in first.history)
    meta = json.loads((tmp_path / "face_teacher" / "meta.json").read_text())
    assert meta["rules"]["teacher"] == "dlib_resnet_v1" and meta["fingerprint"]["num_rows"] == 8
    assert (tmp_path / "images" / "meta.json").is_file() and (tmp_path / "face_images" / "meta.json").is_file()
    found = np.load(tmp_path / "face_teacher" / "found.npy")
    assert found.sum() >= 6  # aligned face photos: the teacher finds nearly all
    # The teacher projection trains but does not ship: the saved model is the plain backbone.
    saved = SapiensIDModel.from_pretrained(first.final_model_dir)
    assert not any("teacher" in name for name in saved.state_dict())
    assert json.loads((first.final_model_dir / "training_config.json").read_text())["distill"]["teacher"] == "dlib_resnet_v1"
    record = saved.config.training
    assert record["teacher"] == "dlib_resnet_v1" and record["unlabelled_photos"] == str(unlabelled_faces)


def test_a_folder_without_a_training_record_counts_as_untrained(tmp_path, caplog):
    from sapiensid_hf.modeling import SapiensIDConfig

    SapiensIDModel(SapiensIDConfig.tiny()).save_pretrained(tmp_path / "random")
    with caplog.at_level("WARNING", logger="sapiensid_hf.inference"):
        pipeline = load_pipeline(str(tmp_path / "random"))
    assert not pipeline.trained and "NO TRAINED WEIGHTS" in caplog.text
    assert "UNTRAINED" in pipeline.description


def test_a_run_that_continues_other_weights_names_them_in_its_record():
    from sapiensid_hf.training.export import training_record

    config = TrainingConfig.from_file(DISTILL_RECIPE).with_overrides(["model.pretrained=pretrained/sapiensid-small"])
    record = training_record(config, 100)
    assert record["initialised_from"] == "pretrained/sapiensid-small" and record["teacher"] == "dlib_resnet_v1"
    assert "initialised_from" not in training_record(TrainingConfig.from_file(DISTILL_RECIPE), 100)
