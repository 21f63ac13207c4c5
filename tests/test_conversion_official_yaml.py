"""The official eval.py layout: model.pth beside model.yaml, read and applied (or refused) field by field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sapiensid_hf.conversion import OfficialCheckpointError, convert_official_checkpoint, main
from sapiensid_hf.official_model_yaml import read_official_model_yaml

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "official_tiny" / "official_state_dict.safetensors"

# The official configs/base.yaml with the fixture's sizes (emb_dim 32, output 64), as eval.py finds it.
MODEL_YAML = """\
color_space: 'RGB'
name: 'mrm'
output_dim: 64
start_from: ''
freeze: False
rgb_mean: [0.5, 0.5, 0.5]
rgb_std: [0.5, 0.5, 0.5]
input_size: [384, 384]
square_pad: true
mask_ratio: 0.66
yaml_path: src/models/sapiens_id/configs/base.yaml
backbone:
  name: 'face_vit_base'
  dynamic_patch_base_size: 32
  pos_embed_type: 'sincos_2d'
  use_mask_token: true
  emb_dim: 32
patch_embed_config:
  name: 'dynamic'
  use_fg_mask: true
  use_mask_token: ${models.backbone.use_mask_token}
  emb_dim: ${models.backbone.emb_dim}
  dynamic_patch_base_size: ${models.backbone.dynamic_patch_base_size}
  subset_method: 'face_first_0.3'
rpe_config:
  name: KPRPE_shared
  ratio: 1.9
  num_keypoints: 19
  kp_dim: ${models.backbone.emb_dim}
head:
  type: 'semantic_attention_head'
  n_multiply_per_query: 4
  depth: 1
  num_heads: 1
  output_dim: ${models.output_dim}
  num_keypoints: ${models.rpe_config.num_keypoints}
  dataset_root_dirs: ${dataset.root_dirs}
kp_preprocessor:
  name: kp19
  drop_idv_ldmk_prob: 0.05
  drop_part_ldmk_prob: 0.05
  bbox_aug_shift_range: 0.05
  bbox_aug_scale_range: 0.05
  bbox_drop_prob: 0.05
"""


def eval_py_folder(tmp_path: Path, yaml_text: str = MODEL_YAML) -> Path:
    folder = tmp_path / "checkpoints" / "sapiensid_tiny"
    folder.mkdir(parents=True)
    torch.save(load_file(str(FIXTURE)), folder / "model.pth")
    (folder / "model.yaml").write_text(yaml_text)
    return folder


def test_references_resolve_within_the_model_config(tmp_path):
    folder = eval_py_folder(tmp_path)
    settings = read_official_model_yaml(folder / "model.yaml")
    assert settings["patch_embed_config"]["emb_dim"] == 32 and settings["head"]["num_keypoints"] == 19
    assert settings["head"]["dataset_root_dirs"] == "${dataset.root_dirs}"  # outside the model config: left alone


def test_an_eval_py_folder_gives_the_same_model_as_the_weights_file(tmp_path):
    folder = eval_py_folder(tmp_path)
    from_folder = convert_official_checkpoint(folder, tmp_path / "from_folder")
    from_file = convert_official_checkpoint(FIXTURE, tmp_path / "from_file")
    assert from_folder.state_dict().keys() == from_file.state_dict().keys()
    for name, tensor in from_file.state_dict().items():
        assert torch.equal(from_folder.state_dict()[name], tensor), name
    saved = json.loads((tmp_path / "from_folder" / "config.json").read_text())
    assert saved["image_mean"] == [0.5, 0.5, 0.5] and saved["token_subset_method"] == "face_first_0.3"


def test_a_different_rgb_mean_is_applied_to_model_and_processor(tmp_path):
    text = MODEL_YAML.replace("rgb_mean: [0.5, 0.5, 0.5]", "rgb_mean: [0.485, 0.456, 0.406]").replace(
        "square_pad: true", "square_pad: false"
    )
    model = convert_official_checkpoint(eval_py_folder(tmp_path, text), tmp_path / "out")
    assert model.config.image_mean == [0.485, 0.456, 0.406] and model.config.square_pad is False
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == [0.485, 0.456, 0.406]
    assert processor["embedding_flip"] is True  # as the official evaluators embed


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("color_space: 'RGB'", "color_space: 'BGR'", "color_space = 'BGR' is not supported"),
        ("pos_embed_type: 'sincos_2d'", "pos_embed_type: 'learned'", "backbone.pos_embed_type = 'learned' is not supported"),
        ("input_size: [384, 384]", "input_size: [256, 256]", "input_size = 256 does not match"),
        ("input_size: [384, 384]", "input_size: [384, 192]", "input_size = [384, 192] must be square"),
        ("n_multiply_per_query: 4", "n_multiply_per_query: 2", "head.n_multiply_per_query = 2 does not match"),
        ("rgb_std: [0.5, 0.5, 0.5]", "rgb_std: [0.5, 0.5]", "rgb_std = [0.5, 0.5] must list 3 numbers"),
        ("mask_ratio: 0.66", "mask_ratio: 1.5", "mask_ratio must be in"),
        ("color_space: 'RGB'", "color_space: [oops", "not valid YAML"),
    ],
)
def test_a_field_the_model_cannot_honour_is_refused_by_name(tmp_path, old, new, message, capsys):
    folder = eval_py_folder(tmp_path, MODEL_YAML.replace(old, new))
    with pytest.raises((OfficialCheckpointError, ValueError), match=message.replace("[", r"\[").replace("]", r"\]")):
        convert_official_checkpoint(folder, tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()
    with pytest.raises(SystemExit) as caught:
        main([str(folder), "--out", str(tmp_path / "cli_out")])
    assert caught.value.code == 1 and "Traceback" not in capsys.readouterr().err
    shutil.rmtree(tmp_path / "cli_out", ignore_errors=True)
