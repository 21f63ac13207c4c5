"""The trainer's position in a run (step, counters, wall time, config), saved as JSON with every checkpoint.

Its own module so that reading a checkpoint (`export.export_checkpoint`) does not need the trainer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError

logger = logging.getLogger(__name__)

# The trainer's own position in the run, as JSON: no load path of a checkpoint unpickles anything.
PROGRESS_FILE = "trainer_progress.json"
LEGACY_PROGRESS_FILE = "custom_checkpoint_0.pkl"  # checkpoints written before PROGRESS_FILE


class TrainerProgress:
    """Run position and counters, saved as JSON (PROGRESS_FILE) with every checkpoint."""

    def __init__(self) -> None:
        self.step = 0
        self.skipped_samples = 0
        self.samples_seen = 0
        self.num_processes = 1
        self.wall_time_s = 0.0  # training time of the segments before this one (resumed runs)
        self.config: dict[str, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def save(self, checkpoint: Path) -> None:
        (checkpoint / PROGRESS_FILE).write_text(json.dumps(self.state_dict(), indent=1) + "\n", encoding="utf-8")

    def load(self, checkpoint: Path) -> None:
        """Read PROGRESS_FILE, or an older checkpoint's pickle as plain data only (`migrate` turns it into JSON)."""
        path, legacy = checkpoint / PROGRESS_FILE, checkpoint / LEGACY_PROGRESS_FILE
        if path.is_file():
            state = json.loads(path.read_text(encoding="utf-8"))
        elif legacy.is_file():
            try:
                state = torch.load(legacy, map_location="cpu", weights_only=True)  # numbers and strings, no code
            except Exception as error:
                raise ConfigError(
                    f"cannot resume {checkpoint}: {LEGACY_PROGRESS_FILE} is not a plain progress record ({error})"
                ) from error
        else:
            raise ConfigError(f"cannot resume {checkpoint}: it has no {PROGRESS_FILE}")
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            raise ConfigError(f"cannot resume {checkpoint}: its progress record has no step")
        self.load_state_dict(state)

    def migrate(self, checkpoint: Path) -> None:
        """Replace an older checkpoint's pickle by PROGRESS_FILE: Accelerate refuses a custom_checkpoint file
        that no registered object claims."""
        legacy = checkpoint / LEGACY_PROGRESS_FILE
        if legacy.is_file():
            self.save(checkpoint)
            legacy.unlink()
            logger.info("%s: progress converted to %s", checkpoint, PROGRESS_FILE)
