"""Averaging the weights of model folders (sapiensid_hf.training.export.average_model_folders), as the
shipped model was made: the mean of each tensor, the last folder's config with the sources recorded, and
refusals for folders that cannot be averaged."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_models import save_trained_tiny_model

from sapiensid_hf import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.training.export import average_model_folders


def _with_steps(folder, steps: int):
    config = json.loads((folder / "config.json").read_text())
    config["training"] = {**config["training"], "steps": steps}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_the_average_holds_the_mean_of_every_tensor_and_names_its_sources(tmp_path):
    first = _with_steps(save_trained_tiny_model(tmp_path / "a", seed=0), 10)
    second = _with_steps(save_trained_tiny_model(tmp_path / "b", seed=1), 16)
    averaged = SapiensIDModel.from_pretrained(average_model_folders([first, second], tmp_path / "mean"))
    one, two = SapiensIDModel.from_pretrained(first).state_dict(), SapiensIDModel.from_pretrained(second).state_dict()
    differing = 0
    for name, value in averaged.state_dict().items():
        torch.testing.assert_close(value, (one[name].float() + two[name].float()).div(2).to(value.dtype), msg=name)
        differing += int(not torch.equal(one[name], two[name]))
    assert differing > 10  # two seeds: the mean is not either model
    record = averaged.config.training
    assert record["weights_averaged_from"] == ["step 10", "step 16"] and record["steps"] == 16
    assert (tmp_path / "mean" / "preprocessor_config.json").is_file()


def test_folders_that_cannot_be_averaged_are_refused_by_name(tmp_path):
    first = save_trained_tiny_model(tmp_path / "a", seed=0)
    with pytest.raises(ValueError, match="two or more"):
        average_model_folders([first], tmp_path / "mean")
    with pytest.raises(FileNotFoundError, match="missing_folder"):
        average_model_folders([first, tmp_path / "missing_folder"], tmp_path / "mean")
    wider = SapiensIDModel(SapiensIDConfig.tiny(hidden_size=64, intermediate_size=128))
    wider.save_pretrained(tmp_path / "wider")
    with pytest.raises(ValueError, match="wider: another architecture.*hidden_size"):
        average_model_folders([tmp_path / "wider", first], tmp_path / "mean")
    assert not (tmp_path / "mean").exists()


def test_float16_weights_halve_the_floats_and_keep_the_rest(tmp_path):
    from safetensors.torch import load_file, save_file

    from sapiensid_hf.training.export import save_float16_weights

    state = {"weight": torch.randn(4, 3), "count": torch.tensor([3, 7], dtype=torch.int64)}
    save_file(state, str(tmp_path / "model.safetensors"))
    save_float16_weights(tmp_path / "model.safetensors", tmp_path / "model.safetensors")  # in place, as the lent run does
    halved = load_file(str(tmp_path / "model.safetensors"))
    assert halved["weight"].dtype == torch.float16 and torch.equal(halved["weight"], state["weight"].half())
    assert halved["count"].dtype == torch.int64 and torch.equal(halved["count"], state["count"])
