"""End-to-end training runs, in-process: learning, resume equality, bad input, the saved folder."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from training_builders import TINY_CONFIG, build_people_dataset, reset_accelerate
from transformers import AutoImageProcessor, AutoModel

from sapiensid_hf.training import (
    ConfigError,
    TrainingConfig,
    TrainingDataError,
    TrainingDivergedError,
    TrainingInterrupted,
    train,
)
from sapiensid_hf.training.recognition_model import SapiensIDForRecognitionTraining
from sapiensid_hf.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("fresh_accelerate")


@pytest.fixture(scope="module")
def people_dataset(people_dir, tmp_path_factory):
    return build_people_dataset(people_dir, tmp_path_factory.mktemp("people"))


def tiny_config(dataset, output_dir, *overrides: str) -> TrainingConfig:
    dataset_dir, cache_dir = dataset
    return TrainingConfig.from_file(TINY_CONFIG).with_overrides(
        [
            f"data.dataset_path={dataset_dir}",
            f"data.keypoint_cache={cache_dir}",
            f"logging.output_dir={output_dir}",
            "model.overrides={image_size: 64}",  # the tiny model at 64 px: 3 x 16 retina tokens
            *overrides,
        ]
    )


def test_tiny_model_learns_the_identities(people_dataset, tmp_path):
    config = tiny_config(
        people_dataset, tmp_path / "run", "schedule.max_steps=80", "logging.save_every_steps=0", "validation.at_start=true"
    )
    result = train(config)
    losses = np.array([entry["loss"] for entry in result.history])
    assert len(losses) == 80 and np.isfinite(losses).all()
    quarter = len(losses) // 4
    assert losses[-quarter:].mean() < 0.8 * losses[:quarter].mean()  # the loss falls clearly
    kept = {entry["kept_tokens"] for entry in result.history}
    assert len(kept) > 5  # variable masking: many token counts were trained on
    before, after = result.validation[0], result.validation[-1]
    chance = 5 / 47  # leave-one-out: 5 other crops of the same photo among 47 images
    assert after["rank1"] > 2 * chance and after["rank1"] >= before["rank1"]
    assert after["mAP"] > before["mAP"] + 0.05  # training improves over the untrained model's ranking

    # The saved folder is a normal hub folder: model + processor through the Auto classes, remote code on.
    final = result.final_model_dir
    model = AutoModel.from_pretrained(final, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(final, trust_remote_code=True)
    assert processor.size["height"] == model.config.image_size == 64
    assert processor.embedding_flip is True  # its Hugging Face users embed as the tools do by default
    photo = sorted(people_dataset[0].parent.glob("images/*/*.png"))[0]
    keypoints = np.full((1, 19, 2), -1, dtype=np.float32)
    inputs = processor([str(photo)], keypoints=keypoints)
    with torch.no_grad():
        embedding = model(pixel_values=inputs["pixel_values"], keypoints=inputs["keypoints"],
                          pixel_mask=inputs["pixel_mask"]).embeddings  # fmt: skip
    assert embedding.shape == (1, model.config.output_dim) and torch.isfinite(embedding).all()
    assert list((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))  # TensorBoard scalars
    # Its model card comes from the training record (the Hub's parser reads it).
    from huggingface_hub import ModelCard

    card = ModelCard.load(final / "README.md")
    assert card.data.pipeline_tag == "image-feature-extraction" and card.data.license_name == "research-only-training-data"
    assert "| steps | 80 of 80 |" in card.text and "| seed | 0 |" in card.text


def read_checkpoint_weights(output_dir, step):
    return load_file(output_dir / "checkpoints" / f"step_{step:08d}" / "model.safetensors")


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(people_dataset, tmp_path, monkeypatch):
    overrides = ("schedule.max_steps=8", "logging.save_every_steps=3", "batch_size=4", "gradient_accumulation_steps=2",
                 "head.sample_rate=0.5", "validation.source=none")  # fmt: skip
    straight = tiny_config(people_dataset, tmp_path / "straight", *overrides)
    train(straight)
    reset_accelerate()

    interrupted = tiny_config(people_dataset, tmp_path / "interrupted", *overrides)
    original_step = Trainer._train_step

    def crash_at_step_five(self, step, batches):
        if step == 5:
            raise KeyboardInterrupt("simulated preemption")
        return original_step(self, step, batches)

    monkeypatch.setattr(Trainer, "_train_step", crash_at_step_five)
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step 5 \(the last checkpoint is .*step_00000003\)"):
        train(interrupted)
    monkeypatch.setattr(Trainer, "_train_step", original_step)
    assert not (tmp_path / "interrupted" / "checkpoints" / "step_00000006").exists()
    saved = json.loads((tmp_path / "interrupted" / "checkpoints" / "step_00000003" / "trainer_progress.json").read_text())
    reset_accelerate()
    resumed = train(interrupted, resume_from_checkpoint="latest")
    assert resumed.steps == 8 and [entry["step"] for entry in resumed.history] == [4.0, 5, 6, 7, 8]
    # The logged training time goes on from the checkpoint's, not from zero.
    assert resumed.history[0]["wall_time_s"] > saved["wall_time_s"] > 0

    expected = read_checkpoint_weights(tmp_path / "straight", 8)
    actual = read_checkpoint_weights(tmp_path / "interrupted", 8)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), name  # backbone, class centres and AdaFace statistics


def test_resume_refuses_a_changed_run(people_dataset, tmp_path):
    config = tiny_config(people_dataset, tmp_path / "run", "schedule.max_steps=2", "logging.save_every_steps=1",
                         "validation.source=none")  # fmt: skip
    train(config)
    reset_accelerate()
    with pytest.raises(ConfigError, match="batch_size: 8 -> 6"):
        train(config.with_overrides(["batch_size=6", "schedule.max_steps=3"]), resume_from_checkpoint="latest")
    reset_accelerate()  # a speed switch is not a changed run: the loop AdamW's state goes on in the fused one
    resumed = train(config.with_overrides(["optimizer.fused=true", "schedule.max_steps=3"]), resume_from_checkpoint="latest")
    assert resumed.steps == 3 and [entry["step"] for entry in resumed.history] == [3.0]


def test_nan_loss_stops_the_run_naming_step_and_images(people_dataset, tmp_path, monkeypatch):
    original = SapiensIDForRecognitionTraining.forward
    calls = {"count": 0}

    def poisoned(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        calls["count"] += 1
        if calls["count"] == 3:
            output["loss"] = output["loss"] * float("nan")
        return output

    monkeypatch.setattr(SapiensIDForRecognitionTraining, "forward", poisoned)
    config = tiny_config(people_dataset, tmp_path / "run", "schedule.max_steps=5", "validation.source=none")
    with pytest.raises(TrainingDivergedError, match=r"non-finite loss at step 2 \(micro-batch 0.*batch rows .*\.png"):
        train(config)


def test_unreadable_images_are_skipped_and_counted(people_dataset, tmp_path, caplog):
    import datasets

    dataset_dir, cache_dir = people_dataset
    source = datasets.load_from_disk(str(dataset_dir)).cast_column("image", datasets.Image(decode=False))

    def break_some(row, index):  # the keypoint cache says readable; the image bytes are damaged
        if index % 12 == 0:
            row["image"] = {"bytes": b"\x89PNG\r\n\x1a\n truncated", "path": None}
        return row

    source.map(break_some, with_indices=True).save_to_disk(str(tmp_path / "damaged"))
    dataset_dir = tmp_path / "damaged"
    config = tiny_config((dataset_dir, cache_dir), tmp_path / "run", "schedule.max_steps=12", "validation.source=train")
    with caplog.at_level(logging.WARNING):
        result = train(config)
    assert result.steps == 12 and result.skipped_samples > 0
    assert "skipping unreadable image" in caplog.text and "00/00.png" in caplog.text
    assert result.validation[-1]["skipped_images"] == 4  # 4 of the 48 images are broken


def test_single_identity_or_empty_datasets_are_refused(people_dataset, tmp_path):
    import datasets

    dataset_dir, cache_dir = people_dataset
    source = datasets.load_from_disk(str(dataset_dir))
    one = source.filter(lambda pid: pid == 3, input_columns="pid")
    keypoints = np.full((len(one), 19, 2), -1.0).tolist()
    one.add_column("keypoints", keypoints).save_to_disk(str(tmp_path / "one"))
    config = tiny_config((tmp_path / "one", cache_dir), tmp_path / "run")
    with pytest.raises(TrainingDataError, match="single identity"):
        train(config)
    reset_accelerate()
    source.select([]).save_to_disk(str(tmp_path / "empty"))
    with pytest.raises(TrainingDataError, match="no images"):
        train(tiny_config((tmp_path / "empty", cache_dir), tmp_path / "run"))
    reset_accelerate()
    with pytest.raises(TrainingDataError, match="no images"):
        train(tiny_config(people_dataset, tmp_path / "run", "data.train_roles=[query]"))


def test_time_limit_ends_the_run_with_a_checkpoint_and_a_model_that_say_so(people_dataset, tmp_path):
    # A limit already passed at the first log step: the run ends there as if finished, nothing lost.
    config = tiny_config(people_dataset, tmp_path / "run", "schedule.max_steps=50", "logging.log_every_steps=2",
                         "logging.save_every_steps=5", "schedule.max_time_s=1e-6", "validation.source=none")  # fmt: skip
    result = train(config)
    assert result.steps == 2 and result.stopped_by_time_limit
    assert [entry["step"] for entry in result.history] == [2.0]
    assert [path.name for path in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_00000002"]
    record = json.loads((result.final_model_dir / "config.json").read_text())["training"]
    assert record["steps"] == 2 and record["max_steps"] == 50 and record["stopped_by"] == "schedule.max_time_s = 1e-06 s"
    assert "| steps | 2 of 50 (ended by schedule.max_time_s = 1e-06 s) |" in (result.final_model_dir / "README.md").read_text()

    # The limit is not part of what defines the run: lifting it continues the same run.
    reset_accelerate()
    resumed = train(config.with_overrides(["schedule.max_time_s=null", "schedule.max_steps=4"]), resume_from_checkpoint="latest")
    assert resumed.steps == 4 and not resumed.stopped_by_time_limit
    assert "stopped_by" not in json.loads((resumed.final_model_dir / "config.json").read_text())["training"]
    with pytest.raises(ConfigError, match="schedule.max_time_s must be > 0"):
        config.with_overrides(["schedule.max_time_s=0"])


def test_checkpoint_progress_records_the_run(people_dataset, tmp_path):
    config = tiny_config(people_dataset, tmp_path / "run", "schedule.max_steps=2", "logging.save_every_steps=1",
                         "logging.keep_last_checkpoints=1", "validation.source=none")  # fmt: skip
    train(config)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert [path.name for path in checkpoints] == ["step_00000002"]  # older ones pruned
    assert json.loads((checkpoints[0] / "COMPLETE").read_text())["step"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["batch_size"] == 8


def test_a_fresh_run_refuses_a_used_output_dir_and_overwrite_starts_afresh(people_dataset, tmp_path):
    config = tiny_config(people_dataset, tmp_path / "run", "schedule.max_steps=2", "logging.save_every_steps=1",
                         "validation.source=none")  # fmt: skip
    train(config)
    reset_accelerate()
    with pytest.raises(ConfigError, match=r"already holds another run \(checkpoints, final_model, .*--overwrite_output_dir"):
        train(config)
    reset_accelerate()
    train(config.with_overrides(["schedule.max_steps=1"]), overwrite_output_dir=True)
    run = tmp_path / "run"
    assert [path.name for path in (run / "checkpoints").iterdir()] == ["step_00000001"]  # none of the old run's
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 1
    assert json.loads((run / "final_model" / "config.json").read_text())["training"]["steps"] == 1


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return type(self.marker).touch, (self.marker,)  # unpickling creates the marker file


def test_resume_never_unpickles_a_checkpoint(people_dataset, tmp_path):
    config = tiny_config(people_dataset, tmp_path / "run", "schedule.max_steps=2", "logging.save_every_steps=1",
                         "validation.source=none")  # fmt: skip
    train(config)
    checkpoint = tmp_path / "run" / "checkpoints" / "step_00000002"
    progress = json.loads((checkpoint / "trainer_progress.json").read_text())
    assert progress["step"] == 2 and not list(checkpoint.glob("custom_checkpoint_*"))
    # A crafted folder in the layout of older checkpoints: a pickle that runs code when loaded.
    (checkpoint / "trainer_progress.json").unlink()
    marker = tmp_path / "pwned-by-checkpoint"
    torch.save({"step": 2, "payload": _RunsCodeWhenUnpickled(marker)}, checkpoint / "custom_checkpoint_0.pkl")
    reset_accelerate()
    with pytest.raises(ConfigError, match="custom_checkpoint_0.pkl is not a plain progress record"):
        train(config.with_overrides(["schedule.max_steps=3"]), resume_from_checkpoint="latest")
    assert not marker.exists()
    # An older checkpoint's plain progress pickle is read as data and converted to JSON.
    torch.save(progress, checkpoint / "custom_checkpoint_0.pkl")
    reset_accelerate()
    assert train(config.with_overrides(["schedule.max_steps=3"]), resume_from_checkpoint="latest").steps == 3
    assert json.loads((checkpoint / "trainer_progress.json").read_text()) == progress
    assert not (checkpoint / "custom_checkpoint_0.pkl").exists()


def test_resume_latest_without_a_checkpoint_restarts_cleanly(people_dataset, tmp_path, monkeypatch):
    config = tiny_config(people_dataset, tmp_path / "run", "schedule.max_steps=3", "logging.save_every_steps=100",
                         "validation.source=none", "logging.log_every_steps=1")  # fmt: skip
    original_step = Trainer._train_step

    def crash_at_step_two(self, step, batches):
        if step == 2:
            raise KeyboardInterrupt
        return original_step(self, step, batches)

    monkeypatch.setattr(Trainer, "_train_step", crash_at_step_two)
    with pytest.raises(TrainingInterrupted, match="no checkpoint was saved yet"):
        train(config)
    monkeypatch.setattr(Trainer, "_train_step", original_step)
    reset_accelerate()
    result = train(config, resume_from_checkpoint="latest")  # what the message says to do
    assert result.steps == 3
    lines = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]  # one run's log, not two


def test_a_bfloat16_run_computes_in_bfloat16_repeats_its_losses_and_warns_where_the_cpu_lacks_it(
    people_dataset, tmp_path, monkeypatch, caplog
):
    """mixed_precision: bf16 on the CPU is torch's bfloat16 autocast (faster matrix products where the CPU
    has AVX512-BF16 / AMX, docs/training.md); where it has not, the run says so at once."""
    overrides = ("mixed_precision=bf16", "schedule.max_steps=4", "logging.save_every_steps=0")
    linear_outputs: set[torch.dtype] = set()

    def record(module, inputs, output):
        if isinstance(module, torch.nn.Linear):
            linear_outputs.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        first = train(tiny_config(people_dataset, tmp_path / "a", *overrides))
    finally:
        handle.remove()
    assert linear_outputs == {torch.bfloat16}
    reset_accelerate()
    monkeypatch.setattr("sapiensid_hf.training.trainer._cpu_has_bfloat16_instructions", lambda: False)
    with caplog.at_level(logging.WARNING, logger="sapiensid_hf.training.trainer"):
        second = train(tiny_config(people_dataset, tmp_path / "b", *overrides))
    assert "no bfloat16 instructions" in caplog.text and "--set mixed_precision=no" in caplog.text
    losses = [[entry["loss"] for entry in run.history] for run in (first, second)]
    assert len(losses[0]) == 4 and np.isfinite(losses[0]).all() and losses[0] == losses[1]


def test_bfloat16_instructions_are_read_from_the_cpu_flags(tmp_path):
    from sapiensid_hf.training.trainer import _cpu_has_bfloat16_instructions

    flags = tmp_path / "cpuinfo"
    flags.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni\n")
    assert not _cpu_has_bfloat16_instructions(flags)  # AVX512 alone converts bfloat16, it does not multiply it
    for native in ("avx512_bf16", "amx_bf16"):
        flags.write_text(f"flags\t\t: fpu avx2 avx512f {native}\n")
        assert _cpu_has_bfloat16_instructions(flags)
    flags.write_text("Features\t: fp asimd bf16 i8mm\n")  # ARM
    assert _cpu_has_bfloat16_instructions(flags)
    assert _cpu_has_bfloat16_instructions(tmp_path / "absent")  # cannot tell: no warning
