"""The training loop: masked recognition training of SapiensID with AdaFace, on Accelerate.

One process or many (`accelerate launch --num_processes N`, gloo on CPU, NCCL on GPU), mixed precision,
gradient accumulation and clipping come from Accelerate. What this file adds:

- a deterministic data stream (samplers.py) and masking schedule (masking.py), both pure functions of
  (seed, step), so `resume_from_checkpoint` continues the very same run: same rows, same augmentation,
  same kept-token counts, and the RNG state Accelerate saved for the model's own randomness;
- checkpoints `output_dir/checkpoints/step_XXXXXXXX` every `save_every_steps` (a `COMPLETE` file marks
  a finished one; "latest" picks the newest complete one);
- periodic validation (rank-1 / mAP), TensorBoard scalars, a tqdm bar;
- bad input handling: unreadable images are skipped, counted and logged; a non-finite loss or
  gradient stops the run naming the step, the micro-batch and its images;
- at the end, `output_dir/final_model`: model + processor via `save_pretrained`, loadable with
  `AutoModel.from_pretrained(folder, trust_remote_code=True)`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from ..data.manifest import load_unlabelled_manifest
from ..keypoint_cache import KeypointCache, build_keypoint_cache, dataset_fingerprint
from ..processing.image_processing_sapiensid import SapiensIDImageProcessor
from ..trained_card import write_trained_card
from .config import ConfigError, TrainingConfig
from .dataset import (
    MODEL_INPUTS,
    DatasetView,
    RecognitionRows,
    SampleReader,
    TeacherTargets,
    TrainingDataError,
    TrainingSamples,
    UnlabelledSamples,
    collate_samples,
    join_unlabelled,
    load_source_dataset,
    split_rows,
)
from .export import training_record
from .face_teacher import TEACHER_DIM, DlibFaceTeacher
from .image_cache import ResizedImageCache, build_image_cache
from .masking import MaskingSchedule
from .optimization import build_optimizer, margin_fraction, scheduled_lr, set_learning_rate
from .progress import TrainerProgress
from .recognition_model import SapiensIDForRecognitionTraining, build_backbone
from .samplers import (
    IdentityBalancedOrder,
    MicroBatchSampler,
    ShuffledOrder,
    TrainingStream,
    unlabelled_stream,
)
from .stop_signals import ignore_stop_signals
from .teacher_cache import TeacherCache, build_teacher_cache
from .validation import validate

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step_"
COMPLETE_MARKER = "COMPLETE"
FINAL_MODEL_DIR = "final_model"
# What a run writes into its output folder: a fresh run into a folder holding any of them would mix two runs.
RUN_ARTEFACTS = (CHECKPOINT_DIR, FINAL_MODEL_DIR, "validation.jsonl", "train_log.jsonl", "logs")
# Config fields that may change when a run is resumed; every other field defines the run.
RESUMABLE_CHANGES = ("logging.", "validation.", "schedule.max_steps", "schedule.max_time_s", "data.num_workers",
                     "data.detector_batch_size", "data.detector_workers", "distill.teacher_workers",
                     # Speed only: a cached square differs from a decoded one by at most half a grey level,
                     # the fused optimizer's update from the loop's by float rounding (same state to resume).
                     "data.image_cache", "distill.unlabelled_image_cache", "optimizer.fused")


class TrainingDivergedError(RuntimeError):
    """The loss or the gradient became NaN / infinite."""


class TrainingInterrupted(Exception):
    """Ctrl-C / SIGTERM during training: where the run stood and the checkpoint a resume continues from."""

    def __init__(self, step: int, checkpoint: Path | None):
        self.step, self.checkpoint = step, checkpoint
        where = f"the last checkpoint is {checkpoint}" if checkpoint else "no checkpoint was saved yet"
        super().__init__(f"interrupted at step {step} ({where}); resume with --resume_from_checkpoint latest")


@dataclass
class TrainingResult:
    output_dir: Path
    final_model_dir: Path | None
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)  # logged training metrics (main process)
    validation: list[dict[str, float]] = field(default_factory=list)
    skipped_samples: int = 0
    stopped_by_time_limit: bool = False  # schedule.max_time_s ended the run before schedule.max_steps


def used_output_entries(output_dir: str | Path) -> list[str]:
    """The entries of an earlier run in `output_dir` (RUN_ARTEFACTS that exist)."""
    return [name for name in RUN_ARTEFACTS if (Path(output_dir) / name).exists()]


def find_checkpoint(output_dir: str | Path, which: str) -> Path | None:
    """"latest" -> the newest complete checkpoint of the run (None if there is none); else the given folder."""
    if which != "latest":
        path = Path(which)
        if not (path / COMPLETE_MARKER).is_file():
            hint = "does not exist" if not path.exists() else f"is not a complete checkpoint (no {COMPLETE_MARKER} file)"
            raise FileNotFoundError(f"resume_from_checkpoint: {path} {hint}")
        return path
    root = Path(output_dir) / CHECKPOINT_DIR
    complete = sorted(path for path in root.glob(f"{CHECKPOINT_PREFIX}*") if (path / COMPLETE_MARKER).is_file())
    return complete[-1] if complete else None


def train(
    config: TrainingConfig, resume_from_checkpoint: str | None = None, overwrite_output_dir: bool = False
) -> TrainingResult:
    """Train as the config says; `resume_from_checkpoint` = "latest" or a checkpoint folder.

    A fresh run refuses an output folder that holds another run's files unless `overwrite_output_dir`,
    which deletes those files (RUN_ARTEFACTS) first.
    """
    return Trainer(config).run(resume_from_checkpoint, overwrite_output_dir=overwrite_output_dir)


class Trainer:
    def __init__(self, config: TrainingConfig):
        self.config = config
        self.output_dir = Path(config.logging.output_dir)
        self.accelerator = Accelerator(
            # Without a GPU, run as CPU processes: several of them then form a gloo group (MULTI_CPU).
            cpu=not _has_accelerator_device(),
            mixed_precision=config.mixed_precision,
            log_with="tensorboard" if config.logging.tensorboard else None,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        if config.mixed_precision == "bf16" and self.accelerator.device.type == "cpu" and not _cpu_has_bfloat16_instructions():
            logger.warning(
                "mixed_precision is bf16 but this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): its bfloat16 "
                "matrix products are emulated and slower than float32; set mixed_precision: 'no' (--set mixed_precision=no)"
            )
        self.progress = TrainerProgress()
        self.history: list[dict[str, float]] = []
        self.validation_history: list[dict[str, float]] = []

    # ----------------------------------------------------------------------------------------- setup
    def _prepare_data(self, model_config) -> None:
        config, accelerator = self.config, self.accelerator
        with accelerator.main_process_first():
            self.view = DatasetView(load_source_dataset(config.data))
        self.processor = SapiensIDImageProcessor.from_model_config(model_config)
        cache = self._keypoints()
        self.keypoints = cache.keypoints
        train_rows, self.validation_rows = split_rows(
            self.view, cache.readable, config.data, config.validation, config.seed
        )
        self.train_rows: RecognitionRows = train_rows
        self.reader = SampleReader(self.view, self.keypoints, self.processor, self._image_cache(self.view, config.data.image_cache))
        logger.info(
            "training on %d images of %d identities (%d unreadable images excluded)",
            len(train_rows.rows), train_rows.num_classes, cache.num_unreadable,
        )  # fmt: skip
        self.teacher_targets: TeacherTargets | None = None
        self.unlabelled: UnlabelledSamples | None = None
        if config.distill.teacher is not None:
            self._prepare_distillation(cache)

    def _prepare_distillation(self, cache: KeypointCache) -> None:
        """Teacher targets of the training rows (where the teacher and the keypoint detector both found a
        face) and the unlabelled face photos that carry a target, all centred on the mean target."""
        distill, accelerator = self.config.distill, self.accelerator
        teacher = DlibFaceTeacher()
        labelled = self._teacher_cache(self.view, distill.teacher_cache, teacher)
        found = labelled.found & cache.face_found
        trained = found[self.train_rows.rows]
        logger.info("distillation: %d of %d training images have a teacher target", int(trained.sum()), len(trained))
        sources = [(labelled, found)]
        if distill.unlabelled_manifest is not None:
            with accelerator.main_process_first():
                view = DatasetView(load_unlabelled_manifest(distill.unlabelled_manifest))
            keypoints = build_keypoint_cache(
                view.image, view.paths, self.processor, distill.unlabelled_keypoint_cache,
                batch_size=self.config.data.detector_batch_size, num_workers=self.config.data.detector_workers,
                process_index=accelerator.process_index, num_processes=accelerator.num_processes,
                barrier=accelerator.wait_for_everyone, progress=self.config.logging.progress_bar,
            )  # fmt: skip
            unlabelled = self._teacher_cache(view, distill.unlabelled_teacher_cache, teacher)
            sources.append((unlabelled, unlabelled.found & keypoints.face_found & keypoints.readable))
        # The teacher's raw descriptors share one large direction (any two faces: cosine 0.83 on average over
        # the unlabelled photos; 0.00 once centred): a target is the descriptor minus the mean of every target.
        mean = np.concatenate([source.embeddings[usable] for source, usable in sources]).mean(axis=0)
        self.teacher_targets = TeacherTargets(labelled.embeddings - mean, found)
        if distill.unlabelled_manifest is None:
            return
        targets = TeacherTargets(unlabelled.embeddings - mean, sources[1][1])
        rows = np.flatnonzero(targets.found)
        if len(rows) < distill.unlabelled_batch_size * accelerator.num_processes:
            raise TrainingDataError(
                f"distill.unlabelled_manifest: only {len(rows)} of {len(view)} photos have a face found by both the "
                f"teacher and the keypoint detector, fewer than one step takes ({distill.unlabelled_batch_size} per process)"
            )
        reader = SampleReader(view, keypoints.keypoints, self.processor, self._image_cache(view, distill.unlabelled_image_cache))
        self.unlabelled = UnlabelledSamples(reader, rows, self.config.augmentation, targets)
        logger.info("distillation: %d of %d unlabelled photos have a teacher target", len(rows), len(view))

    def _image_cache(self, view: DatasetView, folder: str | None) -> ResizedImageCache | None:
        """The view's photos pre-resized to the model's square (made by the main process, read by all)."""
        if folder is None:
            return None
        with self.accelerator.main_process_first():
            return build_image_cache(
                [view.image(row) for row in range(len(view))], view.paths, self.processor, folder,
                num_workers=self.config.data.detector_workers, progress=self.config.logging.progress_bar,
            )  # fmt: skip

    def _teacher_cache(self, view: DatasetView, folder: str, teacher: DlibFaceTeacher) -> TeacherCache:
        """The teacher cache of a view (computed by the main process, read by all)."""
        with self.accelerator.main_process_first():
            return build_teacher_cache(
                [view.image(row) for row in range(len(view))], folder, teacher, names=view.paths,
                num_workers=self.config.distill.teacher_workers, progress=self.config.logging.progress_bar,
            )  # fmt: skip

    def _keypoints(self) -> KeypointCache:
        data, accelerator = self.config.data, self.accelerator
        fingerprint = dataset_fingerprint(self.view.paths)
        if self.view.has_keypoint_column:
            return KeypointCache.from_keypoints(self.view.keypoint_column(), fingerprint)
        if data.keypoint_cache is None:
            raise ConfigError(
                "no keypoints: the dataset has no 'keypoints' column, so set data.keypoint_cache to a folder "
                "(the processor's detector fills it once; run `sapiensid download-detector` first)"
            )
        return build_keypoint_cache(
            self.view.image,
            self.view.paths,
            self.processor,
            data.keypoint_cache,
            batch_size=data.detector_batch_size,
            num_workers=data.detector_workers,
            process_index=accelerator.process_index,
            num_processes=accelerator.num_processes,
            barrier=accelerator.wait_for_everyone,
            progress=self.config.logging.progress_bar,
        )

    def _build_stream(self, model_config) -> TrainingStream:
        config, masking = self.config, self.config.masking
        reference = masking.reference_mask_ratio if masking.reference_mask_ratio is not None else model_config.mask_ratio
        self.schedule = MaskingSchedule(
            num_tokens=model_config.num_levels * model_config.tokens_per_level,
            batch_size=config.batch_size,
            mode=masking.mode,
            mask_ratio=masking.mask_ratio if masking.mask_ratio is not None else model_config.mask_ratio,
            reference_mask_ratio=reference,
            min_kept_fraction=masking.min_kept_fraction,
            max_kept_fraction=masking.max_kept_fraction,
            mean_kept_fraction=masking.mean_kept_fraction,
            lr_scaling=masking.lr_scaling,
            min_batch_size=masking.min_batch_size,
            max_batch_size=masking.max_batch_size,
            seed=config.seed,
        )
        labels = self.train_rows.labels
        if config.data.identity_balanced:
            order = IdentityBalancedOrder(labels, config.data.images_per_identity, config.seed)
        else:
            order = ShuffledOrder(len(labels), config.seed)
        return TrainingStream(
            order,
            order.epoch_length,
            self.schedule,
            num_processes=self.accelerator.num_processes,
            process_index=self.accelerator.process_index,
            accumulation_steps=config.gradient_accumulation_steps,
            seed=config.seed,
        )

    def _data_loader(self, stream: TrainingStream, start_step: int) -> torch.utils.data.DataLoader:
        samples = TrainingSamples(self.reader, self.train_rows, self.config.augmentation, self.teacher_targets)
        return self._loader(samples, stream, start_step)

    def _unlabelled_loader(self, start_step: int) -> torch.utils.data.DataLoader:
        config, accelerator = self.config, self.accelerator
        stream = unlabelled_stream(
            len(self.unlabelled), config.distill.unlabelled_batch_size, config.seed,
            num_processes=accelerator.num_processes, process_index=accelerator.process_index,
            accumulation_steps=config.gradient_accumulation_steps,
        )  # fmt: skip
        return self._loader(self.unlabelled, stream, start_step)

    def _loader(self, samples: torch.utils.data.Dataset, stream: TrainingStream, start_step: int) -> torch.utils.data.DataLoader:
        config = self.config
        return torch.utils.data.DataLoader(
            samples,
            batch_sampler=MicroBatchSampler(stream, start_step, config.schedule.max_steps),
            collate_fn=collate_samples,
            num_workers=config.data.num_workers,
            worker_init_fn=ignore_stop_signals,  # a group-wide stop is the training process's to handle
            pin_memory=self.accelerator.device.type == "cuda",
            # An explicit generator: creating the iterator must not consume the global RNG (resume equality).
            generator=torch.Generator().manual_seed(config.seed),
        )

    # ------------------------------------------------------------------------------------------- run
    def run(self, resume_from_checkpoint: str | None = None, overwrite_output_dir: bool = False) -> TrainingResult:
        config, accelerator = self.config, self.accelerator
        self._segment_start = time.monotonic()
        checkpoint = find_checkpoint(self.output_dir, resume_from_checkpoint) if resume_from_checkpoint else None
        if checkpoint is None:
            # "latest" without a complete checkpoint restarts the same run from step 0: what an unfinished
            # start left behind (logs, a half-written checkpoint) goes; a finished run is never deleted.
            restart = resume_from_checkpoint == "latest" and not (self.output_dir / FINAL_MODEL_DIR).exists()
            self._claim_output_dir(overwrite_output_dir or restart)
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            config.save(self.output_dir / "config.json")
        set_seed(config.seed)  # identical initial weights on every process
        backbone = build_backbone(config.model)
        self._prepare_data(backbone.config)
        stream = self._build_stream(backbone.config)
        model = SapiensIDForRecognitionTraining.with_adaface(
            backbone, config.head, self.train_rows.num_classes, distill=config.distill, teacher_dim=TEACHER_DIM
        )
        optimizer = build_optimizer(model, config.optimizer, config.head)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        set_seed(config.seed, device_specific=True)  # different masking / drops on each process

        if checkpoint is not None:
            self._resume(checkpoint)
        elif resume_from_checkpoint:
            logger.info("no checkpoint in %s yet: starting from step 0", self.output_dir / CHECKPOINT_DIR)
        if config.logging.tensorboard:
            accelerator.init_trackers("tensorboard", config=_flat_hparams(config.to_dict()))

        if self.validation_rows is not None and config.validation.at_start and self.progress.step == 0:
            self._validate()
        try:
            self._train(stream)
        except KeyboardInterrupt:
            raise TrainingInterrupted(self.progress.step, find_checkpoint(self.output_dir, "latest")) from None

        if config.logging.save_every_steps and self.progress.step % config.logging.save_every_steps:
            self._save_checkpoint()
        if self.validation_rows is not None:
            self._validate()
        # The loop ends before max_steps only when schedule.max_time_s ended it (a stop signal raises).
        stopped_by_time_limit = self.progress.step < config.schedule.max_steps
        final_dir = self._save_final_model(stopped_by_time_limit)
        accelerator.end_training()
        return TrainingResult(
            output_dir=self.output_dir,
            final_model_dir=final_dir,
            steps=self.progress.step,
            history=self.history,
            validation=self.validation_history,
            skipped_samples=self.progress.skipped_samples,
            stopped_by_time_limit=stopped_by_time_limit,
        )

    def _claim_output_dir(self, overwrite: bool) -> None:
        """A fresh run: refuse another run's files in the output folder, or delete them with `overwrite`."""
        used = used_output_entries(self.output_dir)
        if used and not overwrite:
            raise ConfigError(
                f"{self.output_dir} already holds another run ({', '.join(used)}); continue it with "
                "--resume_from_checkpoint latest, choose another --output_dir, or pass --overwrite_output_dir to delete them"
            )
        self.accelerator.wait_for_everyone()  # every process has checked before anything is deleted
        if used and self.accelerator.is_main_process:
            logger.warning("deleting %s of the earlier start in %s", ", ".join(used), self.output_dir)
            for name in used:
                path = self.output_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.accelerator.wait_for_everyone()

    def _resume(self, checkpoint: Path) -> None:
        self.progress.load(checkpoint)  # first: it refuses an unsafe folder before Accelerate reads anything
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.progress.migrate(checkpoint)
        self.accelerator.wait_for_everyone()
        self.accelerator.load_state(str(checkpoint))
        # A field the checkpoint's config lacks (a section added since, e.g. distill) had its default then.
        saved = {**_flatten(TrainingConfig().to_dict()), **_flatten(self.progress.config)}
        current = _flatten(self.config.to_dict())
        changed = sorted(
            key for key in set(saved) | set(current)
            if saved.get(key) != current.get(key) and not key.startswith(RESUMABLE_CHANGES)
        )  # fmt: skip
        if changed:
            details = "; ".join(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in changed)
            raise ConfigError(f"cannot resume {checkpoint}: the config changed in fields that define the run ({details})")
        if self.progress.num_processes != self.accelerator.num_processes:
            raise ConfigError(
                f"cannot resume {checkpoint}: it was written by {self.progress.num_processes} process(es), this run has "
                f"{self.accelerator.num_processes}; the data order depends on the process count"
            )
        if saved.get("schedule.max_steps") != current.get("schedule.max_steps"):
            logger.warning("schedule.max_steps changed on resume: the learning-rate schedule changes from here on")
        logger.info("resumed from %s at step %d", checkpoint, self.progress.step)

    def _train(self, stream: TrainingStream) -> None:
        config, accelerator = self.config, self.accelerator
        start = self.progress.step
        if start >= config.schedule.max_steps:
            return
        batches = iter(self._data_loader(stream, start))
        # The unlabelled photos' own stream, read beside the labelled one (distillation only).
        self._unlabelled_batches = iter(self._unlabelled_loader(start)) if self.unlabelled is not None else None
        bar = tqdm(
            total=config.schedule.max_steps, initial=start, desc="training", unit="step", dynamic_ncols=True,
            disable=not (accelerator.is_main_process and config.logging.progress_bar),
        )  # fmt: skip
        window: list[dict[str, float]] = []
        self.model.train()
        for step in range(start, config.schedule.max_steps):
            window.append(self._train_step(step, batches))
            self.progress.step = step + 1
            bar.update(1)
            logged = (step + 1) % config.logging.log_every_steps == 0 or step + 1 == config.schedule.max_steps
            if logged:
                entry = self._log(step + 1, window)
                bar.set_postfix(loss=f"{entry['loss']:.4f}", kept=int(entry["kept_tokens"]))
                window = []
            if logged and self._out_of_time():
                logger.warning(
                    "schedule.max_time_s (%g s of training) reached at step %d of %d: ending the run here",
                    config.schedule.max_time_s, step + 1, config.schedule.max_steps,
                )  # fmt: skip
                break
            if config.logging.save_every_steps and (step + 1) % config.logging.save_every_steps == 0:
                self._save_checkpoint()
            every = config.validation.every_steps
            if self.validation_rows is not None and every and (step + 1) % every == 0 and step + 1 < config.schedule.max_steps:
                self._validate()
        bar.close()

    def _train_step(self, step: int, batches) -> dict[str, float]:
        config, accelerator = self.config, self.accelerator
        plan = self.schedule.at(step)
        lr = scheduled_lr(step, config.optimizer.lr, config.schedule) * plan.lr_factor
        set_learning_rate(self.optimizer, lr)
        # A pure function of the step, like the lr: a resumed run uses the same margin.
        accelerator.unwrap_model(self.model).head.margin_fraction = margin_fraction(step, config.head.margin_warmup_steps)
        losses, correct, norms, distill = [], [], [], {"distill_cosine": [], "distill_relation": []}
        accumulation = config.gradient_accumulation_steps
        for micro in range(accumulation):
            batch = self._next_batch(batches, step, micro)
            if self._unlabelled_batches is not None:
                batch = join_unlabelled(batch, self._next_batch(self._unlabelled_batches, step, micro))
            sync = nullcontext() if micro == accumulation - 1 else accelerator.no_sync(self.model)
            with sync:
                inputs = {name: batch[name].to(accelerator.device, non_blocking=True) for name in MODEL_INPUTS if name in batch}
                output = self.model(**inputs, mask_ratio=plan.mask_ratio)
                loss = output["loss"].mean()
                self._check_finite(loss, step, micro, batch)
                accelerator.backward(loss / accumulation)
            losses.append(loss.detach())
            correct.append(output["correct"].detach().mean())
            norms.append(output["norms"].mean())
            for name, values in distill.items():
                if name in output:
                    values.append(output[name].detach())
        grad_norm = float("nan")
        if config.max_grad_norm is not None:
            grad_norm = float(accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm))
            # fp16's loss scaler skips steps with overflowing gradients by itself; elsewhere it is divergence.
            if not math.isfinite(grad_norm) and config.mixed_precision != "fp16":
                raise TrainingDivergedError(f"the gradient norm became {grad_norm} at step {step}; lower the learning rate")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.samples_seen += plan.batch_size * accumulation * accelerator.num_processes
        distilled = {name: float(torch.stack(values).mean()) for name, values in distill.items() if values}
        return {
            **distilled,
            "loss": float(torch.stack(losses).mean()),
            "accuracy": float(torch.stack(correct).mean()),
            "embedding_norm": float(torch.stack(norms).mean()),
            "lr": lr,
            "kept_tokens": float(plan.kept_tokens),
            "batch_size": float(plan.batch_size),
            "grad_norm": grad_norm,
        }

    def _next_batch(self, batches, step: int, micro: int) -> dict[str, Any]:
        batch = next(batches)
        if (batch["step"], batch["micro"]) != (step, micro):
            raise RuntimeError(f"data stream out of step: expected step {step}.{micro}, got {batch['step']}.{batch['micro']}")
        self._count_skipped(batch, step, micro)
        return batch

    def _count_skipped(self, batch: dict[str, Any], step: int, micro: int) -> None:
        """Log this process's unreadable samples, count every process's, refuse an all-unreadable batch."""
        for item in batch["skipped"]:
            logger.warning("step %d: skipping unreadable image %s (%s)", step, item.path, item.reason)
        if batch["repeated"]:
            logger.warning("step %d.%d: one readable image left in the micro-batch; it is used twice", step, micro)
        local = torch.tensor([float(batch["size"] == 0), float(len(batch["skipped"]))], device=self.accelerator.device)
        empty, skipped = self.accelerator.reduce(local, reduction="sum").tolist()
        self.progress.skipped_samples += int(skipped)
        if empty:
            paths = ", ".join(item.path for item in batch["skipped"][:5]) or "on another process"
            raise TrainingDataError(
                f"step {step} micro-batch {micro}: every image was unreadable on {int(empty)} process(es) ({paths})"
            )

    def _check_finite(self, loss: torch.Tensor, step: int, micro: int, batch: dict[str, Any]) -> None:
        """Stop every process together when any process's loss is NaN / infinite."""
        bad_here = not bool(torch.isfinite(loss.detach()))
        bad = self.accelerator.reduce(torch.tensor([float(bad_here)], device=self.accelerator.device), reduction="sum")
        if float(bad) == 0:
            return
        rows = batch["row"].tolist()
        names = ", ".join(self.view.paths[row] for row in rows[:8]) + (" ..." if len(rows) > 8 else "")
        where = f"this process's loss is {float(loss.detach())}" if bad_here else "the loss of another process is not finite"
        raise TrainingDivergedError(
            f"non-finite loss at step {step} (micro-batch {micro}, process {self.accelerator.process_index}): {where}; "
            f"batch rows {rows[:8]} ({names})"
        )

    # -------------------------------------------------------------------------------- side effects
    def _log(self, step: int, window: list[dict[str, float]]) -> dict[str, float]:
        local = {key: _finite_mean([entry[key] for entry in window]) for key in window[0]}
        loss = self.accelerator.reduce(torch.tensor([local["loss"]], device=self.accelerator.device), reduction="mean")
        entry = {**local, "loss": float(loss), "step": float(step), "skipped_samples": float(self.progress.skipped_samples)}
        entry["norm_mean"] = float(self.accelerator.unwrap_model(self.model).head.norm_mean)
        entry["wall_time_s"] = round(self._training_seconds(), 2)  # steps per second from the log alone
        if self.accelerator.is_main_process:
            self.history.append(entry)
            with (self.output_dir / "train_log.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        self.accelerator.log({f"train/{key}": value for key, value in entry.items() if key != "step"}, step=step)
        return entry

    def _out_of_time(self) -> bool:
        """Whether schedule.max_time_s has passed, decided alike on every process (checked at log steps only)."""
        limit = self.config.schedule.max_time_s
        if limit is None:
            return False
        late = torch.tensor([float(self._training_seconds() >= limit)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(late, reduction="sum").item() > 0)

    def _training_seconds(self) -> float:
        """Training wall time so far: the saved segments' (a resumed run) and this one's."""
        return self.progress.wall_time_s + time.monotonic() - self._segment_start

    def _save_checkpoint(self) -> Path:
        accelerator = self.accelerator
        path = self.output_dir / CHECKPOINT_DIR / f"{CHECKPOINT_PREFIX}{self.progress.step:08d}"
        self.progress.config = self.config.to_dict()
        self.progress.num_processes = accelerator.num_processes
        now = time.monotonic()
        self.progress.wall_time_s += now - self._segment_start
        self._segment_start = now
        accelerator.save_state(str(path))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            self.progress.save(path)
            (path / COMPLETE_MARKER).write_text(json.dumps({"step": self.progress.step}) + "\n", encoding="utf-8")
            complete = sorted(p for p in path.parent.glob(f"{CHECKPOINT_PREFIX}*") if (p / COMPLETE_MARKER).is_file())
            keep = max(1, self.config.logging.keep_last_checkpoints)
            for old in complete[:-keep]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return path

    def _validate(self) -> None:
        accelerator, config = self.accelerator, self.config
        if accelerator.is_main_process:
            backbone = accelerator.unwrap_model(self.model).backbone
            # Validation must not move the training RNG: a resumed run has not validated at this point.
            devices = [accelerator.device] if accelerator.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                metrics = validate(
                    backbone, self.reader, self.validation_rows, config.validation.batch_size, accelerator.device,
                    config.validation.protocol, accelerator.autocast,
                )  # fmt: skip
            metrics["step"] = float(self.progress.step)
            self.validation_history.append(metrics)
            logger.info("validation at step %d: %s", self.progress.step, _format_metrics(metrics))
            with (self.output_dir / "validation.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(metrics) + "\n")
            accelerator.log({f"val/{k}": v for k, v in metrics.items() if k != "step"}, step=self.progress.step)
        accelerator.wait_for_everyone()

    def _save_final_model(self, stopped_by_time_limit: bool) -> Path:
        accelerator = self.accelerator
        final_dir = self.output_dir / FINAL_MODEL_DIR
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            backbone = accelerator.unwrap_model(self.model).backbone
            backbone.config.training = training_record(
                self.config, self.progress.step, accelerator.num_processes, self._training_seconds(),
                stopped_by_time_limit=stopped_by_time_limit,
            )  # fmt: skip
            backbone.save_pretrained(final_dir)
            # The folder's processor flips and cuts a small person from a wider photo, as every tool does by
            # default (the training processor stays as it is).
            folder_processor = copy.copy(self.processor)
            folder_processor.embedding_flip, folder_processor.frame_small_people = True, True
            folder_processor.save_pretrained(final_dir)
            self.config.save(final_dir / "training_config.json")
            write_trained_card(final_dir)  # README.md from the training record; `sapiensid push --results` adds the checks
            logger.info("saved the trained model, processor and model card to %s", final_dir)
            if self.progress.skipped_samples:
                logger.warning("%d unreadable samples were skipped during training", self.progress.skipped_samples)
        accelerator.wait_for_everyone()
        return final_dir


def _finite_mean(values: list[float]) -> float:
    finite = [value for value in values if math.isfinite(value)]
    return sum(finite) / len(finite) if finite else float("nan")


def _cpu_has_bfloat16_instructions(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU multiplies bfloat16 natively (x86: AVX512-BF16 or AMX; ARM: BF16), as Linux's
    /proc/cpuinfo lists its flags. oneDNN's own check also accepts plain AVX512, where bfloat16 is
    converted, not multiplied. Where the flags cannot be read, True: no warning without evidence."""
    try:
        flags = set(cpuinfo.read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return True
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _has_accelerator_device() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or (mps is not None and mps.is_available())
        or (xpu is not None and xpu.is_available())
    )


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and key not in ("overrides", "loader_kwargs"):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _flat_hparams(values: dict[str, Any]) -> dict[str, Any]:
    """TensorBoard hparams accept only scalars and strings."""
    return {
        key: value if isinstance(value, bool | int | float | str) else json.dumps(value)
        for key, value in _flatten(values).items()
    }


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if key != "step")


__all__ = ["Trainer", "TrainingDivergedError", "TrainingResult", "find_checkpoint", "train"]
