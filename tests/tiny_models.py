"""A tiny random SapiensID saved with its processor and a stand-in training record (the tools treat it as
trained weights): the one recipe behind conftest's `trained_tiny_model_dir` and the tests that need a
second, different model."""

from pathlib import Path

import torch

from sapiensid_hf import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor


def save_trained_tiny_model(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = SapiensIDModel(SapiensIDConfig.tiny())
    model.config.training = {"trainer": "tests: a stand-in for trained weights"}
    model.save_pretrained(folder)
    SapiensIDImageProcessor.from_model_config(model.config).save_pretrained(folder)
    return folder
