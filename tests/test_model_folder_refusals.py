"""A model folder whose weights do not match its config is refused everywhere, never half-loaded."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from sapiensid_cli import main as cli_main
from sapiensid_hf.inference import ModelFolderError, load_model, load_pipeline
from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig.tiny())
    model.config.training = {"trainer": "tests: a stand-in for trained weights"}
    model.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def _rewrite(folder, change):
    tensors = load_file(str(folder / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_complete_folder_loads_exactly(folder):
    model = load_model(folder)
    saved = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[name], value) for name, value in saved.items())


def test_missing_and_unexpected_tensors_are_listed(folder):
    def change(tensors):
        del tensors["head.fc1.weight"]
        tensors["head.extra.weight"] = torch.zeros(2)

    _rewrite(folder, change)
    with pytest.raises(ModelFolderError, match=r"1 missing tensor\(s\): head\.fc1\.weight; 1 unexpected tensor\(s\): head\.extra\.weight"):
        load_model(folder)
    with pytest.raises(ModelFolderError):
        load_pipeline(str(folder))


def test_shape_mismatch_and_garbage_files_are_refused(folder, tmp_path):
    _rewrite(folder, lambda tensors: tensors.__setitem__("head.fc2.weight", torch.zeros(3, 3)))
    with pytest.raises(ModelFolderError, match="mismatched"):
        load_model(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises((ModelFolderError, OSError)):
        load_model(folder)


def test_cli_refuses_the_folder_with_a_message_not_a_traceback(folder, capsys, people_dir):
    _rewrite(folder, lambda tensors: tensors.pop("head.fc1.weight"))
    image = str(people_dir / "face_a_1.jpg")
    status = cli_main(["compare", image, image, "--model", str(folder)])
    err = capsys.readouterr().err
    assert status == 1 and "head.fc1.weight" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda config: config.update(hiddden_size=64), r"unknown field\(s\) hiddden_size \(a typo\?\)"),
        (lambda config: config.update(hidden_size="thirty-two"), "hidden_size must be a whole number >= 1, got 'thirty-two'"),
        (lambda config: config.update(num_hidden_layers=-2), "num_hidden_layers must be a whole number >= 1, got -2"),
        (lambda config: config.update(output_dim=64.5), "output_dim must be a whole number >= 1, got 64.5"),
        (lambda config: config.update(model_type="vit"), "model_type is 'vit', not 'sapiensid'"),
    ],
)
def test_a_broken_config_is_refused_naming_the_field(folder, change, message):
    import json

    path = folder / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match=message):
        load_model(folder)


def test_a_config_that_is_not_json_is_refused(folder, capsys, people_dir):
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(ModelFolderError, match="config.json: not valid JSON"):
        load_model(folder)
    image = str(people_dir / "face_a_1.jpg")
    assert cli_main(["compare", image, image, "--model", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "Traceback" not in err


def test_a_hub_repo_gets_its_own_processor_config(monkeypatch):
    from sapiensid_hf.inference import load_processor
    from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor

    config = SapiensIDConfig.tiny()
    asked = []

    def from_hub(source, *args, **kwargs):
        asked.append(source)
        if source == "owner/without-processor":
            raise OSError("owner/without-processor does not appear to have a file named preprocessor_config.json")
        return SapiensIDImageProcessor(size=64, person_crop_fallback=False)

    monkeypatch.setattr(SapiensIDImageProcessor, "from_pretrained", staticmethod(from_hub))
    processor = load_processor("owner/with-processor", config)
    assert asked == ["owner/with-processor"] and processor.size["height"] == 64 and not processor.person_crop_fallback
    fallback = load_processor("owner/without-processor", config)
    assert fallback.size["height"] == config.image_size
