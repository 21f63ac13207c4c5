"""Hub portability, save/load, attention backends, gradient checkpointing and input checks."""

import pytest
import torch
from hub_isolation import run_without_package
from model_inputs import face_close_up, full_body, upper_body
from transformers import AutoConfig, AutoModel

import sapiensid_hf  # noqa: F401  (registers the Auto classes)
from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.modeling.modeling_sapiensid import SapiensIDMLP
from sapiensid_hf.training.recognition_model import enable_activation_checkpointing

HUB_FILES = {
    "config.json",
    "model.safetensors",
    "configuration_sapiensid.py",
    "modeling_sapiensid.py",
    "attention_bias.py",
    "retina_patch.py",
    "retina_rois.py",
    "masked_recognition.py",
    "keypoint_rpe.py",
    "semantic_attention_head.py",
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig.tiny()).eval()
    with torch.no_grad():  # non-trivial values everywhere, including zero-initialised layers and BN stats
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.normal_(std=0.1)
            if "running_var" in name:
                tensor.abs_().add_(0.5)
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder)
    pixels = torch.randn(3, 3, 96, 96)
    keypoints = torch.stack([full_body(), upper_body(), face_close_up()])
    with torch.no_grad():
        reference = model(pixels, keypoints).embeddings
    torch.save({"pixels": pixels, "keypoints": keypoints, "embeddings": reference}, folder / "inputs.pt")
    return folder, model, pixels, keypoints, reference


def test_save_pretrained_writes_weights_config_and_flat_code(saved):
    folder, *_ = saved
    names = {path.name for path in folder.iterdir()}
    assert HUB_FILES <= names
    config = AutoConfig.from_pretrained(folder)
    assert config.auto_map == {
        "AutoConfig": "configuration_sapiensid.SapiensIDConfig",
        "AutoModel": "modeling_sapiensid.SapiensIDModel",
    }


def test_round_trip_is_bit_identical(saved):
    folder, _, pixels, keypoints, reference = saved
    loaded = AutoModel.from_pretrained(folder).eval()
    assert isinstance(loaded, SapiensIDModel)
    with torch.no_grad():
        assert torch.equal(loaded(pixels, keypoints).embeddings, reference)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_from_pretrained_in_half_precision_gives_the_float32_embeddings(saved, dtype):
    # from_pretrained(dtype=...) keeps the rebuilt position table in float32 while the weights are half:
    # every consumer of the positions has to cast (it used to fail with a dtype mismatch).
    folder, _, pixels, keypoints, reference = saved
    loaded = AutoModel.from_pretrained(folder, dtype=dtype).eval()
    assert loaded.embeddings.patch_projection.weight.dtype == dtype
    assert loaded.embeddings.position_table.dtype == torch.float32
    with torch.no_grad():
        embeddings = loaded(pixels.to(dtype), keypoints).embeddings
    assert embeddings.dtype == dtype
    assert torch.nn.functional.cosine_similarity(embeddings.float(), reference, dim=1).min() >= 0.999
    # A cast after loading keeps the table in float32 too (rebuilt, not rounded).
    assert torch.equal(loaded.float().to(dtype).embeddings.position_table, SapiensIDModel(saved[1].config).embeddings.position_table)


def test_trust_remote_code_loads_where_the_package_is_not_importable(saved):
    folder, *_ = saved
    stdout = run_without_package(
        f"""
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert "sapiensid_hf" not in type(model).__module__, type(model).__module__
        data = torch.load({str(folder / "inputs.pt")!r})
        with torch.no_grad():
            embeddings = model(data["pixels"], data["keypoints"]).embeddings
        assert torch.equal(embeddings, data["embeddings"]), (embeddings - data["embeddings"]).abs().max()
        print("ok", type(model).__module__)
        """
    )
    assert "transformers_modules" in stdout


def test_sdpa_and_eager_attention_agree(saved):
    _, model, pixels, keypoints, reference = saved
    eager = SapiensIDModel._from_config(model.config, attn_implementation="eager").eval()
    eager.load_state_dict(model.state_dict())
    with torch.no_grad():
        output = eager(pixels, keypoints, output_attentions=True)
    assert (output.embeddings - reference).abs().max() <= 1e-5
    assert len(output.attentions) == model.config.num_hidden_layers
    probabilities = output.attentions[0]
    torch.testing.assert_close(probabilities.sum(-1), torch.ones_like(probabilities.sum(-1)))


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(use_reentrant, monkeypatch):
    # Reentrant checkpointing only sees tensors passed positionally: the KP-RPE bucket values reach the
    # layer that way, so KP-RPE's own weights must get the same gradient too.
    config = SapiensIDConfig.tiny(drop_path_rate=0.0)
    pixels = torch.randn(4, 3, 96, 96)
    keypoints = torch.stack([full_body(), upper_body(), face_close_up(), full_body(0.4)])
    mlp_runs, mlp_forward = [], SapiensIDMLP.forward
    monkeypatch.setattr(SapiensIDMLP, "forward", lambda self, hidden: mlp_runs.append(1) or mlp_forward(self, hidden))
    gradients = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = SapiensIDModel(config).train()
        with torch.no_grad():  # zero-initialised: give KP-RPE's output layer weights so fc1 gets a gradient
            model.keypoint_rpe.fc2.weight.normal_(std=0.05)
        if checkpointing:
            enable_activation_checkpointing(model, use_reentrant=use_reentrant)
        mlp_runs.clear()
        torch.manual_seed(1)  # same masking and augmentation draws
        model(pixels, keypoints).embeddings.square().mean().backward()
        # Checkpointed, every layer runs again in the backward pass (module hooks do not see that re-run).
        assert len(mlp_runs) == config.num_hidden_layers * (2 if checkpointing else 1)
        gradients.append([model.layers[0].attention.qkv.weight.grad.clone(), model.keypoint_rpe.fc1.weight.grad.clone()])
    for plain, checkpointed in zip(*gradients, strict=True):
        assert plain.abs().max() > 0
        assert (checkpointed - plain).abs().max() <= 1e-4 * plain.abs().max()


def test_the_mlp_activation_gives_relu6_values_and_gradients_in_place_or_not():
    torch.manual_seed(0)
    mlp = SapiensIDMLP(SapiensIDConfig.tiny())
    inputs = 20 * torch.randn(2, 5, mlp.fc1.in_features)
    hidden = mlp.fc1(inputs)
    assert (hidden < 0).any() and (hidden > 6).any()  # both clipped sides are exercised
    reference = mlp.fc2(hidden.clamp(0, 6))
    untouched = inputs.clone()
    with torch.no_grad():  # inference: ReLU6 runs in place on fc1's temporary output
        assert torch.equal(mlp(inputs), reference)
    assert torch.equal(inputs, untouched)
    inputs.requires_grad_()
    output, reference = mlp(inputs), mlp.fc2(mlp.fc1(inputs).clamp(0, 6))
    assert torch.equal(output, reference)
    upstream = torch.randn_like(output)
    ours = torch.autograd.grad(output, (inputs, mlp.fc1.weight), upstream)
    theirs = torch.autograd.grad(reference, (inputs, mlp.fc1.weight), upstream)
    for mine, expected in zip(ours, theirs, strict=True):
        assert torch.equal(mine, expected)


def test_bad_inputs_get_clear_errors():
    model = SapiensIDModel(SapiensIDConfig.tiny()).eval()
    pixels = torch.randn(2, 3, 96, 96)
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(B, 3, 96, 96\)"):
        model(torch.randn(2, 3, 64, 64), torch.zeros(2, 19, 2))
    with pytest.raises(ValueError, match=r"keypoints must have shape \(2, 19, 2\)"):
        model(pixels, torch.zeros(2, 17, 2))
    with pytest.raises(ValueError, match="no visible retina patch"):
        model(pixels, torch.full((2, 19, 2), -1.0), pixel_mask=torch.zeros(2, 96, 96))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        SapiensIDConfig(image_size=100, patch_size=32)
    # Values the model cannot score are refused, not turned into NaN embeddings or a torch internal error.
    nan_pixels = pixels.clone()
    nan_pixels[1, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match=r"pixel_values contains NaN or infinite values \(1 of them\)"):
        model(nan_pixels, torch.zeros(2, 19, 2))
    both_infinities = pixels.clone()
    both_infinities[0, 1, 2, 3], both_infinities[1, 2, 3, 4] = float("inf"), float("-inf")  # they sum to NaN
    with pytest.raises(ValueError, match=r"pixel_values contains NaN or infinite values \(2 of them\)"):
        model(both_infinities, torch.zeros(2, 19, 2))
    huge = pixels.clone()
    huge[:, :, :2] = 3e38  # finite, but their sum overflows: nothing to refuse
    model(huge, torch.zeros(2, 19, 2))
    keypoints = torch.full((2, 19, 2), -1.0)
    keypoints[0, 3] = float("inf")
    with pytest.raises(ValueError, match="keypoints contains NaN or infinite"):
        model(pixels, keypoints)
    with pytest.raises(TypeError, match="pixel_values must be a floating-point tensor, got torch.uint8"):
        model(torch.zeros(2, 3, 96, 96, dtype=torch.uint8), torch.zeros(2, 19, 2))
