"""Parity with the official SapiensID code: convert its state dict, compare embeddings on the same inputs.

The fixture (tests/fixtures/official_tiny) was produced by scripts/make_official_fixture.py from the
official repository itself: a reduced official network with seeded random weights, each image run
alone. docs/conversion.md says how to regenerate it.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_isolation import run_without_package
from PIL import Image
from safetensors.torch import load_file, save_file

import sapiensid_hf  # noqa: F401  (registers the Auto classes)
from sapiensid_hf.conversion import (
    canonical_official_keys,
    convert_official_checkpoint,
    convert_official_state_dict,
    infer_official_config,
    load_converted_model,
    load_official_state_dict,
)
from sapiensid_hf.modeling.retina_rois import official22_to_kp19

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "official_tiny"
TOLERANCE = 1e-4
# Official outputs: the released configuration (no level embedding) and the variant with one.
VARIANTS = {"released": "embeddings", "level_embed": "embeddings_level_embed"}


def official_state_dict(variant: str) -> dict[str, torch.Tensor]:
    state_dict = load_file(str(FIXTURE / "official_state_dict.safetensors"))
    if variant == "released":
        del state_dict["net.patch_embed.level_embed"]
    return state_dict


@pytest.fixture(scope="module")
def fixture_inputs():
    meta = json.loads((FIXTURE / "config.json").read_text())
    images = np.stack([np.asarray(Image.open(FIXTURE / case["image"]).convert("RGB")) for case in meta["cases"]])
    pixel_values = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    arrays = np.load(FIXTURE / "inputs.npz")
    outputs = np.load(FIXTURE / "outputs.npz")
    return {
        "names": [case["name"] for case in meta["cases"]],
        "dims": meta["dims"],
        "pixel_values": pixel_values,
        "keypoints": official22_to_kp19(torch.from_numpy(arrays["keypoints22"])),
        "pixel_mask": torch.from_numpy(arrays["foreground_masks"]),
        "official": {variant: torch.from_numpy(outputs[key]) for variant, key in VARIANTS.items()},
    }


def embed_each_alone(model, inputs) -> torch.Tensor:
    rows = []
    with torch.no_grad():
        for i in range(inputs["pixel_values"].shape[0]):
            one = slice(i, i + 1)
            rows.append(
                model(inputs["pixel_values"][one], inputs["keypoints"][one], pixel_mask=inputs["pixel_mask"][one]).embeddings
            )
    return torch.cat(rows)


def assert_matches_official(embeddings: torch.Tensor, official: torch.Tensor, names: list[str]) -> None:
    worst = (embeddings - official).abs().amax(dim=1)
    report = ", ".join(f"{name} {value:.2e}" for name, value in zip(names, worst.tolist(), strict=True))
    assert worst.max() <= TOLERANCE, f"max |ours - official| per case: {report}"


def converted_model(variant: str):
    state_dict = official_state_dict(variant)
    config = infer_official_config(canonical_official_keys(state_dict))
    return load_converted_model(convert_official_state_dict(state_dict, config), config)


def test_fixture_covers_the_promised_cases(fixture_inputs):
    assert fixture_inputs["names"] == [
        "full_body", "face_only", "body_no_face", "all_missing", "box_outside", "synthetic_wide", "synthetic_tall_sparse",
    ]  # fmt: skip
    keypoints = fixture_inputs["keypoints"]
    assert (keypoints[fixture_inputs["names"].index("all_missing")] == -1).all()
    # Square padding is present (white bands) in the foreground masks of non-square images.
    assert not fixture_inputs["pixel_mask"].all(dim=(1, 2)).all()
    total = sum(path.stat().st_size for path in FIXTURE.rglob("*") if path.is_file())
    assert total < 5e6


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_config_is_read_from_the_official_shapes(variant, fixture_inputs):
    config = infer_official_config(canonical_official_keys(official_state_dict(variant)))
    dims = fixture_inputs["dims"]
    assert config.image_size == dims["input_size"]
    assert config.patch_size == dims["dynamic_patch_base_size"]
    assert config.hidden_size == dims["emb_dim"]
    assert config.num_hidden_layers == dims["depth"]
    assert config.num_attention_heads == dims["num_heads"]  # from the KP-RPE output layer
    assert config.intermediate_size == dims["emb_dim"] * dims["mlp_ratio"]
    assert config.output_dim == dims["output_dim"]
    assert (config.kprpe_keypoint_dim, config.kprpe_mlp_dim) == (dims["kprpe_keypoint_dim"], dims["kprpe_mlp_dim"])
    assert config.use_level_embed == (variant == "level_embed")
    assert config.use_mask_token and config.use_kprpe and not config.qkv_bias


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_converted_model_gives_the_official_embeddings(variant, fixture_inputs):
    model = converted_model(variant)
    embeddings = embed_each_alone(model, fixture_inputs)
    assert_matches_official(embeddings, fixture_inputs["official"][variant], fixture_inputs["names"])


def test_batched_run_gives_the_per_image_official_embeddings(fixture_inputs):
    # The official model lets batch padding leak between images; this implementation must not.
    model = converted_model("released")
    with torch.no_grad():
        embeddings = model(
            fixture_inputs["pixel_values"], fixture_inputs["keypoints"], pixel_mask=fixture_inputs["pixel_mask"]
        ).embeddings
    assert_matches_official(embeddings, fixture_inputs["official"]["released"], fixture_inputs["names"])


# Runs where sapiensid_hf cannot be imported, so the folder's own code files must do the work.
REMOTE_CODE_SCRIPT = """
import torch
from transformers import AutoImageProcessor, AutoModel
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
assert processor.size == {"height": model.config.image_size, "width": model.config.image_size}, processor.size
data = torch.load(data_path)
with torch.no_grad():
    rows = [
        model(data["pixel_values"][i : i + 1], data["keypoints"][i : i + 1], pixel_mask=data["pixel_mask"][i : i + 1]).embeddings
        for i in range(data["pixel_values"].shape[0])
    ]
torch.save(torch.cat(rows), data_path)
"""


def test_converted_folder_loads_with_trust_remote_code(tmp_path, fixture_inputs):
    # The authors' format: torch.save of SapiensModel.state_dict() (keys net.*) as model.pt in a folder.
    checkpoint_dir = tmp_path / "sapiensid_official"
    checkpoint_dir.mkdir()
    torch.save(official_state_dict("released"), checkpoint_dir / "model.pt")
    out = tmp_path / "converted"
    converted = convert_official_checkpoint(checkpoint_dir, out)

    names = {path.name for path in out.iterdir()}
    assert {
        "config.json", "model.safetensors", "modeling_sapiensid.py", "configuration_sapiensid.py",
        "preprocessor_config.json", "image_processing_sapiensid.py", "README.md",
    } <= names  # fmt: skip
    card = (out / "README.md").read_text()
    assert "SapiensID: Foundation for Human Recognition" in card and "2504.04708" in card
    assert "Licence" in card and "Limits of biometric use" in card
    from huggingface_hub import ModelCard

    data = ModelCard(card).data  # the Hub's own parser reads the front matter
    assert (data.library_name, data.pipeline_tag, data.license) == ("transformers", "image-feature-extraction", "other")
    assert data.license_name == "sapiensid-weights-no-licence-granted" and data.datasets and data.eval_results is None

    data_path = tmp_path / "inputs.pt"
    torch.save({key: fixture_inputs[key] for key in ("pixel_values", "keypoints", "pixel_mask")}, data_path)
    run_without_package(f"folder, data_path = {str(out)!r}, {str(data_path)!r}\n" + REMOTE_CODE_SCRIPT)
    embeddings = torch.load(data_path)
    assert_matches_official(embeddings, fixture_inputs["official"]["released"], fixture_inputs["names"])
    torch.testing.assert_close(embeddings, embed_each_alone(converted, fixture_inputs), rtol=0, atol=1e-6)


def test_checkpoint_file_formats_load_to_the_same_tensors(tmp_path):
    reference = canonical_official_keys(official_state_dict("released"))
    plain = official_state_dict("released")
    without_net = {name.removeprefix("net."): tensor for name, tensor in plain.items()}
    torch.save({"state_dict": plain, "epoch": 3}, tmp_path / "lightning.ckpt")
    torch.save({"model": {f"module.{name}": tensor for name, tensor in without_net.items()}}, tmp_path / "checkpoint.pth")
    save_file(plain, str(tmp_path / "model.safetensors"))
    for name in ("lightning.ckpt", "checkpoint.pth", "model.safetensors"):
        loaded = load_official_state_dict(tmp_path / name)
        assert loaded.keys() == reference.keys(), name
        assert all(torch.equal(loaded[key], reference[key]) for key in reference), name
