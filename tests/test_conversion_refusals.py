"""The official-checkpoint converter refuses anything it cannot map exactly, and says what is wrong."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sapiensid_hf.conversion import (
    OfficialCheckpointError,
    canonical_official_keys,
    convert_official_state_dict,
    infer_official_config,
    load_official_state_dict,
    main,
)

FIXTURE_STATE_DICT = Path(__file__).resolve().parent / "fixtures" / "official_tiny" / "official_state_dict.safetensors"


class NotATensor:
    """A pickled object that torch.load(weights_only=True) must refuse to rebuild."""


@pytest.fixture
def official():
    return load_file(str(FIXTURE_STATE_DICT))


@pytest.fixture
def config(official):
    return infer_official_config(canonical_official_keys(official))


def test_missing_key_is_named(official, config):
    del official["net.backbone.blocks.1.mlp.fc2.bias"]
    with pytest.raises(OfficialCheckpointError, match=r"missing keys: layers\.1\.mlp\.fc2\.bias"):
        convert_official_state_dict(official, config)


def test_wrong_shape_is_named_with_both_shapes(official, config):
    official["net.backbone.blocks.1.attn.proj.weight"] = torch.zeros(32, 31)
    with pytest.raises(OfficialCheckpointError, match=r"layers\.1\.attention\.proj\.weight: checkpoint \(32, 31\) vs model \(32, 32\)"):
        convert_official_state_dict(official, config)


def test_unmapped_key_is_named(official, config):
    official["net.backbone.blocks.0.attn.relative_position_bias"] = torch.zeros(4)
    with pytest.raises(OfficialCheckpointError, match=r"unmapped official keys \(no rule\): net\.backbone\.blocks\.0\.attn\.relative_position_bias"):
        convert_official_state_dict(official, config)


def test_every_problem_is_listed_at_once(official, config):
    del official["net.head.flatten_feature.3.running_var"]
    official["net.backbone.norm.weight"] = torch.ones(33)
    official["net.extra_classifier.weight"] = torch.zeros(2, 2)
    with pytest.raises(OfficialCheckpointError) as caught:
        convert_official_state_dict(official, config)
    message = str(caught.value)
    assert "net.extra_classifier.weight" in message
    assert "head.bn2.running_var" in message
    assert "layernorm.weight: checkpoint (33,) vs model (32,)" in message


def test_a_layer_missing_from_the_config_is_refused(official):
    # A checkpoint with a level embedding cannot go into a model configured without one.
    config = infer_official_config(canonical_official_keys(official))
    config.use_level_embed = False
    with pytest.raises(OfficialCheckpointError, match=r"no place for: embeddings\.level_embed"):
        convert_official_state_dict(official, config)


def test_a_learned_position_table_is_refused(official, config):
    official["net.backbone.pos_embed"] = official["net.backbone.pos_embed"] + 0.01
    with pytest.raises(OfficialCheckpointError, match="learned position table"):
        convert_official_state_dict(official, config)


def test_cls_row_of_the_position_table_folds_into_the_cls_token(official, config):
    official["net.backbone.pos_embed"][:, 0] = 0.25
    converted = convert_official_state_dict(official, config)
    torch.testing.assert_close(converted["embeddings.cls_token"], official["net.backbone.cls_token"] + 0.25)


def test_heads_come_from_the_kprpe_layer_or_the_official_default(official):
    canonical = canonical_official_keys(official)
    assert infer_official_config(canonical).num_attention_heads == 4
    with pytest.raises(OfficialCheckpointError, match="contradicts the KP-RPE output layer, which has 4 heads"):
        infer_official_config(canonical, num_attention_heads=8)
    without_rpe = {name: tensor for name, tensor in canonical.items() if not name.startswith("rpe_module.")}
    assert infer_official_config(without_rpe).num_attention_heads == 16
    assert infer_official_config(without_rpe, num_attention_heads=8).num_attention_heads == 8


def test_not_a_sapiensid_checkpoint_is_refused(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(OfficialCheckpointError, match="not an official SapiensID checkpoint"):
        infer_official_config(load_official_state_dict(tmp_path / "other.pt"))


def test_pickles_with_objects_are_not_unpickled(tmp_path, official):
    torch.save({"state_dict": official, "trainer": NotATensor()}, tmp_path / "unsafe.pt")
    with pytest.raises(OfficialCheckpointError, match=r"holds Python objects besides tensors .*NotATensor") as refused:
        load_official_state_dict(tmp_path / "unsafe.pt")
    assert "weights_only=False" not in str(refused.value)  # never advise unpickling code


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", r"is empty \(0 bytes\)"), (bytes(range(256)) * 8, "is not a torch or safetensors checkpoint")],
)
def test_empty_and_garbage_files_get_a_reason(tmp_path, content, message):
    (tmp_path / "model.pt").write_bytes(content)
    with pytest.raises(OfficialCheckpointError, match=message) as refused:
        load_official_state_dict(tmp_path / "model.pt")
    assert "weights_only=False" not in str(refused.value)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model.pt"):
        load_official_state_dict(tmp_path)


def test_cli_converts_and_reports(tmp_path, official, capsys):
    torch.save(official, tmp_path / "model.pt")
    assert main([str(tmp_path / "model.pt"), "--out", str(tmp_path / "out")]) == 0
    assert "width 32, 2 layers, 4 heads, input 384, embedding 64" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_cli_refusal_exits_1_with_the_list(tmp_path, official, capsys):
    del official["net.head.attn.q_proj.weight"]
    torch.save(official, tmp_path / "model.pt")
    with pytest.raises(SystemExit) as caught:
        main([str(tmp_path / "model.pt"), "--out", str(tmp_path / "out")])
    assert caught.value.code == 1  # a bad checkpoint is a failed command (1), not a bad command line (2)
    assert "missing keys: head.attention.q_proj.weight" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_missing_checkpoint_exits_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main([str(tmp_path / "nowhere.pt"), "--out", str(tmp_path / "out")])
    assert caught.value.code == 1 and "nowhere.pt does not exist" in capsys.readouterr().err


def test_output_folder_rules_and_only_written_files_are_uploaded(tmp_path, official, monkeypatch, capsys):
    import huggingface_hub

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    torch.save(official, checkpoint / "model.pt")
    with pytest.raises(SystemExit) as caught:
        main([str(checkpoint / "model.pt"), "--out", str(checkpoint)])
    assert caught.value.code == 1 and "is the checkpoint's own folder" in capsys.readouterr().err
    out = tmp_path / "out"
    out.mkdir()
    (out / "my_notes.txt").write_text("private")
    with pytest.raises(SystemExit) as caught:
        main([str(checkpoint / "model.pt"), "--out", str(out)])
    assert caught.value.code == 1 and "is not empty (1 entries)" in capsys.readouterr().err

    uploads = []

    class RecordingApi:
        def create_repo(self, repo_id, **kwargs):
            pass

        def upload_folder(self, **kwargs):
            uploads.append(kwargs)

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    assert main([str(checkpoint / "model.pt"), "--out", str(out), "--overwrite", "--push-to-hub", "me/sapiensid"]) == 0
    (upload,) = uploads
    assert upload["repo_id"] == "me/sapiensid" and "my_notes.txt" not in upload["allow_patterns"]
    assert {"config.json", "model.safetensors", "README.md", "modeling_sapiensid.py"} <= set(upload["allow_patterns"])
    assert (out / "my_notes.txt").read_text() == "private"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_checkpoint_converts_to_a_float32_model(tmp_path, official, dtype):
    from sapiensid_hf.conversion import convert_official_checkpoint

    reference = convert_official_checkpoint(FIXTURE_STATE_DICT, tmp_path / "fp32")
    torch.save({name: tensor.to(dtype) for name, tensor in official.items()}, tmp_path / "half.pt")
    # Its rounded sin-cos table is not mistaken for a learned one.
    model = convert_official_checkpoint(tmp_path / "half.pt", tmp_path / "half")
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor.to(dtype).float(), rtol=0, atol=0, msg=name)
