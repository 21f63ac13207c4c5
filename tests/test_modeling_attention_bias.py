"""The encoder's attention bias: KP-RPE pair bias with the key bias folded in, built a few images at a time."""

import pytest
import torch
import torch.nn.functional as F
from model_inputs import face_close_up, full_body, upper_body

from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.modeling.attention_bias import (
    attention_learning_the_bias,
    attention_with_pair_bias,
    fold_key_bias_into_buckets,
    fold_key_bias_into_values,
    pair_bias,
    samples_per_attention_call,
    writes_attention_out,
)
from sapiensid_hf.modeling.masked_recognition import TokenSelection, key_bias

HEADS, BUCKETS = 3, 50


def selection_with_padding(kept: int = 7) -> TokenSelection:
    valid = torch.ones(3, kept, dtype=torch.bool)
    valid[1, 5:] = False  # batch padding in the middle image
    valid[2, 2:] = False
    return TokenSelection(torch.zeros(3, kept, dtype=torch.long), valid, torch.tensor([1, 4, 30]))


def random_table(dtype=torch.float32, kept=7):
    torch.manual_seed(0)
    length = 1 + kept + 1  # CLS, kept tokens, MASK
    values = torch.randn(3, length, HEADS, BUCKETS, dtype=dtype)
    buckets = torch.randint(0, BUCKETS - 1, (3, length, length))
    buckets[:, 0, :] = buckets[:, :, 0] = BUCKETS - 1  # CLS and MASK rows / columns: no position
    buckets[:, -1, :] = buckets[:, :, -1] = BUCKETS - 1
    return values, buckets


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_folded_key_bias_gives_exactly_the_gathered_bias_plus_the_key_bias(dtype):
    values, buckets = random_table(dtype)
    keys = key_bias(selection_with_padding(), True, dtype)
    expected = torch.gather(values, 3, buckets[:, :, None, :].expand(-1, -1, HEADS, -1)).transpose(1, 2)
    expected = expected + keys[:, None, None, :]
    index = fold_key_bias_into_buckets(buckets, keys, True, BUCKETS)
    folded = pair_bias(fold_key_bias_into_values(values, keys, True), index)
    assert folded.shape == (3, HEADS, 9, 9)
    assert folded.is_contiguous()  # head-major values: CPU attention reads a contiguous mask fastest
    assert torch.equal(folded, expected)
    # The mask token's log(count) and the padding's -inf are in it, not just copies of the values.
    assert torch.isneginf(folded[1, :, :, 6:8]).all() and torch.isfinite(folded[0]).all()
    assert torch.equal(folded[2, :, :, -1], values[2, :, :, -1].T + torch.tensor(30.0, dtype=dtype).log())


def test_without_a_mask_token_only_padding_is_folded():
    values, buckets = random_table()
    values, buckets = values[:, :-1], buckets[:, :-1, :-1]
    keys = key_bias(selection_with_padding(), False, torch.float32)
    index = fold_key_bias_into_buckets(buckets, keys, False, BUCKETS)
    assert index.max() == BUCKETS  # the padding bucket; the mask-token bucket is never read
    expected = torch.gather(values, 3, buckets[:, :, None, :].expand(-1, -1, HEADS, -1)).transpose(1, 2)
    assert torch.equal(pair_bias(fold_key_bias_into_values(values, keys, False), index), expected + keys[:, None, None, :])


@pytest.mark.parametrize("samples_per_call", [1, 2, 3])
def test_attention_built_a_few_images_at_a_time_equals_one_call_over_the_batch(samples_per_call):
    # 64 tokens, 32-wide heads, as in the model. (With a handful of tokens, torch's CPU attention kernel
    # can differ in the last bit between batch sizes.)
    values, buckets = random_table(kept=62)
    keys = key_bias(selection_with_padding(kept=62), True, torch.float32)
    values = fold_key_bias_into_values(values, keys, True)
    index = fold_key_bias_into_buckets(buckets, keys, True, BUCKETS)
    query, key, value = (torch.randn(3, HEADS, 64, 32) for _ in range(3))
    reference = F.scaled_dot_product_attention(query, key, value, attn_mask=pair_bias(values, index), scale=0.3)
    chunked = attention_with_pair_bias(query, key, value, values, index, 0.0, 0.3, samples_per_call=samples_per_call)
    assert torch.equal(chunked, reference)


def learnable_attention_inputs(dtype=torch.float64):
    """q, k, v (3, HEADS, 64, 32) and folded bias values with padding keys, all requiring a gradient."""
    values, buckets = random_table(kept=62)
    keys = key_bias(selection_with_padding(kept=62), True, torch.float32)
    values = fold_key_bias_into_values(values, keys, True).to(dtype)
    index = fold_key_bias_into_buckets(buckets, keys, True, BUCKETS)
    query, key, value = (torch.randn(3, HEADS, 64, 32, dtype=dtype) for _ in range(3))
    return [t.requires_grad_() for t in (query, key, value, values)], index


def attention_and_gradients(attention, inputs, index, autocast=False):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        query, key, value = (t.to(torch.bfloat16) if autocast else t for t in leaves[:3])
        output = attention(query, key, value, leaves[3], index)
    # A loss that weighs every output differently, so that every gradient matters.
    (output.double() * torch.linspace(-1, 1, output.numel(), dtype=torch.float64).view(output.shape)).sum().backward()
    return [output.detach().double(), *(leaf.grad.double() for leaf in leaves)]


def sdpa_over_the_dense_bias(query, key, value, values, index):
    return F.scaled_dot_product_attention(query, key, value, attn_mask=pair_bias(values, index), scale=0.3)


def cpu_training_attention(query, key, value, values, index):
    return attention_with_pair_bias(query, key, value, values, index, 0.0, 0.3, samples_per_call=2)  # two calls


def written_out_attention(query, key, value, values, index):
    return attention_learning_the_bias(query, key, value, values, index, 0.0, 0.3)


def test_written_out_attention_gives_sdpas_values_and_gradients():
    """In float64 the written-out attention is SDPA to rounding, gradients (the bias values' too) included."""
    inputs, index = learnable_attention_inputs()
    reference = attention_and_gradients(sdpa_over_the_dense_bias, inputs, index)
    ours = attention_and_gradients(written_out_attention, inputs, index)
    assert torch.isfinite(ours[0]).all()  # padding keys (-inf) never fill a row
    names = ("output", "query", "key", "value", "bias values")
    for name, mine, theirs in zip(names, ours, reference, strict=True):
        assert (mine - theirs).abs().max() <= 1e-12 * theirs.abs().max(), name
    assert reference[4].abs().sum() > 0  # the bias gets a gradient: the test would see one missing


def test_attention_is_written_out_only_in_reduced_precision_cpu_training():
    inputs, _ = learnable_attention_inputs(torch.float32)
    query, values = inputs[0], inputs[3]
    assert writes_attention_out(query.to(torch.bfloat16), values)  # bfloat16 autocast: q, k, v in bfloat16
    assert not writes_attention_out(query, values)  # float32: SDPA's math path is as fast
    assert not writes_attention_out(query.to(torch.bfloat16), values.detach())  # nothing to learn in the bias
    with torch.no_grad():
        assert not writes_attention_out(query.to(torch.bfloat16), values)  # inference keeps the fused kernel


def test_cpu_training_attention_under_bfloat16_autocast_stays_as_close_to_float64_as_sdpa():
    """Under bfloat16 autocast the products run in bfloat16, the bias and the softmax in float32: output and
    gradients stay within 1e-2 of float64 attention on the same (bfloat16) q, k, v, as SDPA does."""
    inputs, index = learnable_attention_inputs(torch.float32)
    rounded = [t.detach().to(torch.bfloat16).double() if i < 3 else t.detach().double() for i, t in enumerate(inputs)]
    exact = attention_and_gradients(sdpa_over_the_dense_bias, rounded, index)
    sdpa = attention_and_gradients(sdpa_over_the_dense_bias, inputs, index, autocast=True)
    ours = attention_and_gradients(cpu_training_attention, inputs, index, autocast=True)
    # It is the written-out attention (split into calls of two images), not SDPA's.
    whole = attention_and_gradients(written_out_attention, inputs, index, autocast=True)
    assert (ours[0] - whole[0]).abs().max() <= 1e-6 and not torch.equal(ours[0], sdpa[0])
    for name, mine, theirs, truth in zip(("output", "query", "key", "value", "bias values"), ours, sdpa, exact, strict=True):
        error, sdpa_error = ((x - truth).norm() / truth.norm() for x in (mine, theirs))
        assert error <= 1e-2, name
        assert error <= 1.6 * sdpa_error, name


@pytest.mark.filterwarnings("ignore")  # torch.jit.trace is deprecated and warns about the constant it records
def test_cpu_calls_keep_the_bias_small_and_exporters_see_one_call():
    # Full width (16 heads, 406 tokens): 10.5 MB of bias an image, so one image per call; a small
    # model's bias fits many images in one call.
    wide = torch.empty(8, 16, 406, 32)
    assert samples_per_attention_call(wide, torch.empty(0)) == 1
    small = torch.empty(64, 6, 110, 32)
    assert samples_per_attention_call(small, torch.empty(0)) == (8 * 2**20) // (6 * 110 * 110 * 4) == 28
    assert samples_per_attention_call(small[:5], torch.empty(0)) == 5
    traced = torch.jit.trace(lambda q: torch.tensor(samples_per_attention_call(q, torch.empty(0))), (wide,), check_trace=False)
    assert int(traced(wide)) == 8


def test_the_model_gives_the_same_embeddings_as_with_the_dense_bias():
    """Whole model: the per-image folded path equals eager attention over the dense (B, H, L, L) bias."""
    torch.manual_seed(0)
    config = SapiensIDConfig.tiny(image_size=192, patch_size=32)
    model = SapiensIDModel(config).double().eval()
    with torch.no_grad():
        for parameter in model.keypoint_rpe.parameters():  # zero-initialised: make the bias matter
            parameter.normal_(std=0.2)
    eager = SapiensIDModel._from_config(config, attn_implementation="eager").double().eval()
    eager.load_state_dict(model.state_dict())
    keypoints = torch.stack([full_body(), upper_body(), face_close_up()]).double()
    pixels = torch.randn(3, 3, 192, 192, dtype=torch.float64)
    pixel_mask = torch.ones(3, 192, 192)
    pixel_mask[0, :, :60] = 0  # padding tokens in the batch
    with torch.no_grad():
        ours = model(pixels, keypoints, pixel_mask=pixel_mask)
        dense = eager(pixels, keypoints, pixel_mask=pixel_mask)
        one_by_one = [model(pixels[i : i + 1], keypoints[i : i + 1], pixel_mask=pixel_mask[i : i + 1]) for i in range(3)]
    assert (ours.token_ids[0] < 0).any()
    assert (ours.embeddings - dense.embeddings).abs().max() <= 1e-10
    for index, single in enumerate(one_by_one):
        assert (ours.embeddings[index] - single.embeddings[0]).abs().max() <= 1e-10


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.bfloat16, 2e-2), (torch.float16, 3e-3)])
def test_half_precision_models_stay_finite_and_close_to_float32(dtype, tolerance):
    # torch's CPU grid_sample returns NaN on half-precision grids (and a bfloat16 grid cannot address
    # a 384 px image): the retina sampling runs in float32 whatever the model's dtype. Padding tokens
    # (pixel_mask) were where the NaN showed first.
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig.tiny(image_size=192, patch_size=32)).eval()
    with torch.no_grad():
        for parameter in model.keypoint_rpe.parameters():
            parameter.normal_(std=0.05)
    keypoints = torch.stack([full_body(), upper_body(), face_close_up()])
    pixels = torch.randn(3, 3, 192, 192)
    pixel_mask = torch.ones(3, 192, 192)
    pixel_mask[0, :, :60] = 0
    with torch.no_grad():
        reference = model(pixels, keypoints, pixel_mask=pixel_mask)
        half = model.to(dtype)(pixels.to(dtype), keypoints, pixel_mask=pixel_mask)
    assert half.embeddings.dtype == dtype
    assert torch.isfinite(half.embeddings).all() and torch.isfinite(half.last_hidden_state).all()
    assert torch.equal(half.token_ids, reference.token_ids)
    error = (half.last_hidden_state.float() - reference.last_hidden_state).norm() / reference.last_hidden_state.norm()
    assert error <= tolerance
    # The head picks tokens by position in float32, so the embedding follows the encoder's small error.
    assert F.cosine_similarity(half.embeddings.float(), reference.embeddings, dim=1).min() >= 0.999
