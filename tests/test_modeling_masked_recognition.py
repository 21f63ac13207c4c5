"""Masked Recognition Model: one mask token with +log(n) equals n mask tokens; keep rules; batch independence."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from model_inputs import POSES, face_close_up, full_body, upper_body

from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.modeling.masked_recognition import num_tokens_to_keep, select_tokens


@pytest.fixture(scope="module")
def model64() -> SapiensIDModel:
    torch.manual_seed(0)
    model = SapiensIDModel(SapiensIDConfig.tiny(image_size=192, patch_size=32)).double().eval()
    with torch.no_grad():  # make KP-RPE (zero-initialised) and the mask token matter
        for parameter in model.keypoint_rpe.parameters():
            parameter.normal_(std=0.2)
        model.embeddings.mask_token.normal_(std=1.0)
    return model


def prepared_sequence(model, keypoints, mask_ratio):
    size = model.config.image_size
    pixels = torch.randn(keypoints.shape[0], 3, size, size, dtype=torch.float64)
    faces, bodies = model.roi_boxes_from_keypoints(keypoints)
    tokens = model.embeddings(pixels, faces, bodies)
    selection = select_tokens(tokens.visible, keypoints, model.config, mask_ratio, use_subset_rule=False)
    hidden, positions = model.embed_selected_tokens(pixels, tokens, selection)
    keypoint_positions, missing = model.keypoint_positions(keypoints, tokens.position_grid)
    return hidden, selection, positions, keypoint_positions, missing


def encode_with_copies(model, hidden, selection, positions, keypoint_positions, missing, copies):
    """Reference: the same encoder with `copies` real mask tokens and no count bias."""
    rpe = model.keypoint_rpe
    relations = rpe.relation_features(positions, keypoint_positions, missing, selection.valid, True)
    relations = torch.cat([relations, relations[:, -1:].expand(-1, copies - 1, -1)], dim=1)
    buckets = rpe.token_buckets(selection.token_ids, True)
    buckets = F.pad(buckets, (0, copies - 1, 0, copies - 1), value=rpe.num_buckets - 1)
    hidden = torch.cat([hidden, hidden[:, -1:].expand(-1, copies - 1, -1)], dim=1)
    padding = torch.zeros(selection.valid.shape, dtype=hidden.dtype).masked_fill(~selection.valid, float("-inf"))
    zeros = torch.zeros(hidden.shape[0], 1, dtype=hidden.dtype)
    key_bias = torch.cat([zeros, padding, zeros.expand(-1, copies)], dim=1)[:, None, None, :]
    for index, layer in enumerate(model.layers):
        values = rpe.bucket_values(relations, index)  # (B, L, H, buckets): the pair bias is a gather from it
        pair_bias = torch.gather(values, 3, buckets[:, :, None, :].expand(-1, -1, values.shape[2], -1)).transpose(1, 2)
        hidden, _ = layer(hidden, pair_bias + key_bias)
    return model.layernorm(hidden)


@pytest.mark.parametrize("copies", [1, 2, 5, 17, 60])
def test_one_mask_token_with_log_count_bias_equals_n_identical_mask_tokens(model64, copies):
    keypoints = torch.stack([full_body(), upper_body()]).double()
    hidden, selection, positions, keypoint_positions, missing = prepared_sequence(model64, keypoints, mask_ratio=0.5)
    selection = dataclasses.replace(selection, mask_count=torch.full_like(selection.mask_count, copies))
    with torch.no_grad():
        one_token, _, _ = model64.encode(hidden, selection, positions, keypoint_positions, missing)
        many_tokens = encode_with_copies(model64, hidden, selection, positions, keypoint_positions, missing, copies)
    kept = selection.token_ids.shape[1] + 1  # CLS and the kept tokens
    real = torch.cat([torch.ones(2, 1, dtype=torch.bool), selection.valid], dim=1)
    difference = (one_token[:, :kept] - many_tokens[:, :kept]).abs()[real]
    assert difference.max() <= 1e-5
    # The count matters: without the bias the output is different.
    if copies > 1:
        assert (one_token[:, :kept][real] - encode_with_copies(
            model64, hidden, selection, positions, keypoint_positions, missing, 1)[:, :kept][real]).abs().max() > 1e-4


def test_training_keeps_int_t_times_one_minus_ratio_tokens(model64):
    keypoints = torch.stack([full_body(), upper_body(), face_close_up()]).double()
    _, selection, _, _, _ = prepared_sequence(model64, keypoints, mask_ratio=0.66)
    total = model64.config.num_levels * model64.config.tokens_per_level
    assert selection.token_ids.shape[1] == num_tokens_to_keep(total, 0.66) == int(total * 0.34)
    # Visible tokens are always kept first; the mask token stands for everything not kept.
    assert torch.equal(selection.mask_count, total - selection.valid.sum(dim=1))


def test_face_first_rule_masks_face_tokens_first_for_full_body_images():
    config = SapiensIDConfig.tiny(image_size=192, patch_size=32, token_subset_method="face_first_1.0")
    model = SapiensIDModel(config).eval()
    keypoints = full_body()[None]
    faces, bodies = model.roi_boxes_from_keypoints(keypoints)
    tokens = model.embeddings(torch.randn(1, 3, 192, 192), faces, bodies)
    selection = select_tokens(tokens.visible, keypoints, config, 0.5, use_subset_rule=True)
    per_level = config.tokens_per_level
    kept_levels = selection.token_ids[0] // per_level
    visible_levels = tokens.visible[0].nonzero().flatten() // per_level
    # Half masked: every visible full-image token is kept, then upper-body ones; face tokens go first.
    assert torch.equal(kept_levels, kept_levels.sort().values)
    assert (kept_levels == 0).sum() == (visible_levels == 0).sum()
    assert (kept_levels == 2).sum() < (visible_levels == 2).sum()


def test_embedding_does_not_depend_on_the_rest_of_the_batch():
    model = SapiensIDModel(SapiensIDConfig.tiny(image_size=192, patch_size=32)).eval()
    with torch.no_grad():
        for parameter in model.keypoint_rpe.parameters():
            parameter.normal_(std=0.2)
    poses = [POSES[name]() for name in sorted(POSES)]
    keypoints = torch.stack(poses)
    pixels = torch.randn(len(poses), 3, 192, 192)
    pixel_mask = torch.ones(len(poses), 192, 192, dtype=torch.long)
    pixel_mask[1, :, :40] = 0  # one image with square padding: fewer tokens, more batch padding
    with torch.no_grad():
        together = model(pixels, keypoints, pixel_mask=pixel_mask)
        counts = (together.token_ids >= 0).sum(dim=1)
        assert counts.unique().numel() > 1, "the batch must mix token counts to exercise padding"
        for index in range(len(poses)):
            alone = model(pixels[index : index + 1], keypoints[index : index + 1], pixel_mask=pixel_mask[index : index + 1])
            assert (alone.embeddings[0] - together.embeddings[index]).abs().max() <= 1e-5
            # Reordering the batch changes nothing either.
        shuffled = model(pixels.flip(0), keypoints.flip(0), pixel_mask=pixel_mask.flip(0))
        assert (shuffled.embeddings.flip(0) - together.embeddings).abs().max() <= 1e-5


def test_keep_all_tokens_gives_the_same_embeddings():
    model = SapiensIDModel(SapiensIDConfig.tiny(image_size=192, patch_size=32)).eval()
    keypoints = torch.stack([full_body(), face_close_up()])
    pixels = torch.randn(2, 3, 192, 192)
    with torch.no_grad():
        dropped = model(pixels, keypoints)
        padded = model(pixels, keypoints, keep_all_tokens=True)
    assert padded.token_ids.shape[1] == 3 * model.config.tokens_per_level
    assert (dropped.embeddings - padded.embeddings).abs().max() <= 1e-5


def test_masking_is_off_in_eval_and_on_in_training_unless_asked():
    model = SapiensIDModel(SapiensIDConfig.tiny(image_size=192, patch_size=32))
    keypoints = full_body()[None].expand(4, -1, -1)
    pixels = torch.randn(4, 3, 192, 192)
    total = 3 * model.config.tokens_per_level
    model.eval()
    visible = int((model(pixels, keypoints).token_ids >= 0).sum(dim=1)[0])
    assert model(pixels, keypoints, mask_ratio=0.5).token_ids.shape[1] == int(total * 0.5)
    model.train()
    assert model(pixels, keypoints).token_ids.shape[1] == int(total * (1 - 0.66))
    assert (model(pixels, keypoints, mask_ratio=0.0).token_ids >= 0).sum(dim=1).max() <= visible
