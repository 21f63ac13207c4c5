"""Training building blocks: AdaFace, the masking schedule, flip, samplers, config, keypoint cache."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from model_inputs import face_close_up, full_body, upper_body
from PIL import Image

from sapiensid_hf.keypoint_cache import KeypointCacheMismatchError, keypoint_rules_of
from sapiensid_hf.modeling.configuration_sapiensid import FLIP_PAIRS
from sapiensid_hf.modeling.masked_recognition import num_tokens_to_keep
from sapiensid_hf.processing.image_processing_sapiensid import SapiensIDImageProcessor
from sapiensid_hf.processing.keypoint_detector import KeypointResult
from sapiensid_hf.training import (
    AdaFaceHead,
    ConfigError,
    IdentityBalancedOrder,
    KeypointCache,
    MaskingSchedule,
    ShuffledOrder,
    TrainingConfig,
    TrainingStream,
    build_keypoint_cache,
    dataset_fingerprint,
    flip_keypoints,
    flip_sample,
    photometric_jitter,
)
from sapiensid_hf.training.augmentation import LUMA, TrainingAugmentation, random_erasing, reframe_sample
from sapiensid_hf.training.config import HeadConfig, OptimizerConfig
from sapiensid_hf.training.masking import mask_ratio_for, solve_exponential_rate, truncated_exponential_mean
from sapiensid_hf.training.optimization import build_optimizer, scheduled_lr

# ------------------------------------------------------------------------------------------ AdaFace


def reference_adaface(embeddings, norms, labels, kernel, state, m=0.4, h=0.333, s=64.0, t_alpha=0.01, eps=1e-3):
    """The published AdaFace margin over the full (B, C) matrix, written from its formulas."""
    cosine = (embeddings @ kernel).clamp(-1 + eps, 1 - eps)
    safe = norms.clamp(0.001, 100)
    state["mean"] = safe.mean() * t_alpha + (1 - t_alpha) * state["mean"]
    state["std"] = safe.std() * t_alpha + (1 - t_alpha) * state["std"]
    scaler = ((safe - state["mean"]) / (state["std"] + eps) * h).clamp(-1, 1)
    one_hot = torch.nn.functional.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
    theta = (cosine.acos() + one_hot * (-m * scaler)).clamp(eps, math.pi - eps)
    return (theta.cos() - one_hot * (m + m * scaler)) * s


def test_adaface_matches_the_published_formula_over_several_steps():
    torch.manual_seed(1)
    head = AdaFaceHead(embedding_size=16, num_classes=10).train()
    kernel = torch.nn.functional.normalize(head.weight.detach(), dim=1).T
    state = {"mean": torch.tensor(20.0), "std": torch.tensor(100.0)}
    for _ in range(3):
        raw = torch.randn(6, 16) * torch.linspace(0.5, 30, 6)[:, None]
        labels = torch.randint(0, 10, (6,))
        out = head(raw, labels)
        norms = raw.norm(dim=1, keepdim=True)
        expected = reference_adaface(raw / norms, norms, labels, kernel, state)
        torch.testing.assert_close(out.logits, expected, atol=2e-4, rtol=1e-5)
        torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(expected, labels, reduction="none"),
                                   atol=2e-4, rtol=1e-5)  # fmt: skip
    assert float(head.norm_mean) == pytest.approx(float(state["mean"]), rel=1e-6)
    assert float(head.norm_std) == pytest.approx(float(state["std"]), rel=1e-6)


def test_adaface_margin_depends_on_norm_high_norm_gets_larger_angular_margin():
    head = AdaFaceHead(embedding_size=4, num_classes=3).train()
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 4))
    direction = torch.nn.functional.normalize(torch.tensor([[1.0, 0.3, 0.0, 0.0]]), dim=1)
    low = head(direction * 1.0, torch.tensor([0])).logits[0, 0]
    high = head(direction * 200.0, torch.tensor([0])).logits[0, 0]
    assert low != high  # the margin moves with the norm (quality)
    assert torch.isfinite(low) and torch.isfinite(high)


def test_partial_fc_scores_every_positive_and_equals_the_full_logits_on_its_columns():
    torch.manual_seed(2)
    full = AdaFaceHead(8, 1000).train()
    partial = AdaFaceHead(8, 1000, sample_rate=0.05).train()
    partial.load_state_dict(full.state_dict())
    embeddings, labels = torch.randn(12, 8) * 10, torch.randint(0, 1000, (12,))
    expected = full(embeddings, labels)
    sampled = partial(embeddings, labels)
    assert len(sampled.classes) == 50 and set(labels.tolist()) <= set(sampled.classes.tolist())
    torch.testing.assert_close(sampled.logits, expected.logits[:, sampled.classes])
    assert torch.equal(sampled.classes[sampled.targets], labels)
    # Only the sampled class centres receive a gradient.
    sampled.loss.sum().backward()
    touched = partial.weight.grad.abs().sum(dim=1) > 0
    assert set(touched.nonzero().flatten().tolist()) <= set(sampled.classes.tolist())


def test_adaface_refuses_bad_labels_and_single_class():
    with pytest.raises(ValueError, match="at least 2 classes"):
        AdaFaceHead(4, 1)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        AdaFaceHead(4, 3)(torch.randn(2, 4), torch.tensor([0, 3]))


# ------------------------------------------------------------------------------------------ masking


@pytest.mark.parametrize("num_tokens", [48, 108, 432])
def test_mask_ratio_for_makes_the_model_keep_exactly_n_tokens(num_tokens):
    for kept in range(1, num_tokens):
        assert num_tokens_to_keep(num_tokens, mask_ratio_for(kept, num_tokens)) == kept
    assert mask_ratio_for(num_tokens, num_tokens) == 0.0


def test_truncated_exponential_rate_solves_for_the_mean():
    for mean in (5.0, 20.0, 50.0, 80.0):
        rate = solve_exponential_rate(mean, 100.0)
        assert truncated_exponential_mean(rate, 100.0) == pytest.approx(mean, rel=1e-6)
    assert solve_exponential_rate(20.0, 100.0) > 0 > solve_exponential_rate(80.0, 100.0)


def test_variable_schedule_draws_match_the_distribution_and_the_batch_rule():
    schedule = MaskingSchedule(num_tokens=432, batch_size=32, mode="variable", reference_mask_ratio=0.66,
                               min_kept_fraction=0.1, max_batch_size=1000, seed=3)  # fmt: skip
    plans = [schedule.at(step) for step in range(4000)]
    kept = np.array([plan.kept_tokens for plan in plans])
    assert kept.min() >= schedule.min_kept and kept.max() <= 432
    assert kept.mean() == pytest.approx(0.34 * 432, rel=0.03)  # mean = fixed-ratio kept count
    assert np.median(kept) < kept.mean()  # exponential: short sequences are the common case
    assert (kept > 0.8 * 432).any()  # ...but full-length ones still occur
    reference = schedule.reference_kept
    for plan in plans[:200]:
        assert plan.batch_size == round(32 * reference / plan.kept_tokens)
        assert plan.lr_factor == pytest.approx(math.sqrt(plan.batch_size / 32))
        assert num_tokens_to_keep(432, plan.mask_ratio) == plan.kept_tokens or plan.mask_ratio == 0.0
    assert [schedule.at(step) for step in range(50)] == plans[:50]  # a pure function of the step


def test_fixed_and_none_schedules_and_batch_clamps():
    assert MaskingSchedule(108, 8, mode="fixed", mask_ratio=0.66).at(5).kept_tokens == int(108 * 0.34)
    none = MaskingSchedule(108, 8, mode="none").at(0)
    assert (none.mask_ratio, none.batch_size, none.lr_factor) == (0.0, 8, 1.0)
    clamped = MaskingSchedule(108, 8, mode="variable", min_batch_size=4, max_batch_size=12, lr_scaling="linear")
    batches = {clamped.at(step).batch_size for step in range(500)}
    assert min(batches) >= 4 and max(batches) <= 12
    assert all(clamped.at(s).lr_factor == pytest.approx(clamped.at(s).batch_size / 8) for s in range(50))


def test_learning_rate_schedule_warmup_and_cosine():
    config = TrainingConfig.from_dict({"data": {"dataset_path": "x"}, "schedule": {"max_steps": 110, "warmup_steps": 10}})
    lrs = [scheduled_lr(step, 1.0, config.schedule) for step in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.5) and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


# --------------------------------------------------------------------------------------------- flip


@pytest.mark.parametrize("pose", [full_body, upper_body, face_close_up])
def test_flip_mirrors_points_and_keeps_the_left_right_conventions(pose):
    keypoints = pose().numpy()
    flipped = flip_keypoints(keypoints)
    shown = (keypoints != -1).all(axis=1)
    assert np.array_equal((flipped != -1).all(axis=1), shown)  # same points visible (pairs swapped)
    assert flipped[0, 0] == pytest.approx(1 - keypoints[0, 0])  # nose
    for first, second in FLIP_PAIRS:
        if shown[first] and shown[second]:
            # Swapped and mirrored: the point now in `first` is the mirror of the old `second`.
            assert np.allclose(flipped[first], [1 - keypoints[second, 0], keypoints[second, 1]])
            if first in (1, 3):  # eye_1 / mouth_1: the smaller x
                assert flipped[first, 0] < flipped[second, 0]
            else:  # ears and body: "left" has the larger x
                assert flipped[first, 0] > flipped[second, 0]
    assert np.allclose(flip_keypoints(flipped), keypoints)


def test_flip_of_a_lone_point_follows_the_processor_rule():
    keypoints = np.full((19, 2), -1.0, dtype=np.float32)
    keypoints[7] = [0.8, 0.5]  # only the left shoulder, on the right of the image (canonical)
    flipped = flip_keypoints(keypoints)
    assert np.allclose(flipped[8], [0.2, 0.5]) and (flipped[7] == -1).all()  # now "right", x < 0.5


def test_flip_sample_mirrors_pixels_and_mask():
    pixels = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    mask = np.zeros((8, 8), dtype=np.int64)
    mask[:, :3] = 1
    flipped, flipped_mask, _ = flip_sample(pixels, mask, full_body().numpy())
    assert np.array_equal(flipped, pixels[:, ::-1]) and flipped_mask[:, -3:].all() and not flipped_mask[:, :-3].any()


def test_photometric_jitter_changes_content_only_and_stays_in_range():
    rng = np.random.default_rng(0)
    pixels = rng.random((16, 16, 3)).astype(np.float32)
    content = np.zeros((16, 16), dtype=np.int64)
    content[4:12] = 1
    jittered = photometric_jitter(pixels, content, rng, 0.4, 0.4, 0.4, grayscale_prob=1.0)
    assert np.array_equal(jittered[content == 0], pixels[content == 0])
    assert not np.allclose(jittered[content == 1], pixels[content == 1])
    assert jittered.min() >= 0 and jittered.max() <= 1
    assert np.allclose(jittered[content == 1][:, 0], jittered[content == 1][:, 1])  # grayscale


def test_photometric_jitter_applies_the_published_formulas_to_the_photo_and_keeps_the_input():
    """Brightness, contrast about the photo's mean luma, saturation about each pixel's luma, clipped: the
    written-out formulas with the same draws, to float32 rounding; the caller's pixels are not touched."""
    pixels = np.random.default_rng(1).random((12, 12, 3)).astype(np.float32)
    content = np.zeros((12, 12), dtype=np.int64)
    content[2:10, 3:11] = 1
    before = pixels.copy()
    jittered = photometric_jitter(pixels, content, np.random.default_rng(5), 0.3, 0.3, 0.3)
    draws = np.random.default_rng(5)
    expected = pixels.astype(np.float64) * draws.uniform(0.7, 1.3)  # brightness
    mean_luma = (expected @ LUMA)[content == 1].mean()
    expected = (expected - mean_luma) * draws.uniform(0.7, 1.3) + mean_luma  # contrast
    saturation = draws.uniform(0.7, 1.3)
    luma = (expected @ LUMA)[..., None]
    expected = np.clip((expected - luma) * saturation + luma, 0, 1)
    expected[content == 0] = pixels[content == 0]
    np.testing.assert_allclose(jittered, expected, atol=2e-6)
    assert np.array_equal(pixels, before) and jittered.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_tensors_are_the_normalised_photo_channels_first(dtype):
    from types import SimpleNamespace

    from sapiensid_hf.training.dataset import SampleReader

    reader = SampleReader(None, None, SimpleNamespace(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]))
    rng = np.random.default_rng(0)
    pixels, mask = rng.random((8, 8, 3)).astype(dtype), (rng.random((8, 8)) > 0.5).astype(np.uint8)
    before = pixels.copy()
    tensors = reader.to_tensors(pixels, mask, np.zeros((19, 2), np.float32))
    expected = ((pixels - reader.mean) / reader.std).transpose(2, 0, 1).astype(np.float32)  # the written-out rule
    assert tensors["pixel_values"].dtype == torch.float32 and tensors["pixel_values"].is_contiguous()
    np.testing.assert_array_equal(tensors["pixel_values"].numpy(), expected)
    np.testing.assert_array_equal(tensors["pixel_mask"].numpy(), mask)
    np.testing.assert_array_equal(pixels, before)  # the caller's photo is not changed


def test_reframing_without_a_change_is_the_identity_and_a_tighter_cut_zooms_about_the_centre():
    pixels = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    mask = np.ones((16, 16), dtype=np.int64)
    keypoints = full_body().numpy()
    same = reframe_sample(pixels, mask, keypoints, 1.0)
    np.testing.assert_allclose(same[0], pixels, atol=1e-6)
    assert np.array_equal(same[1], mask) and np.allclose(same[2], keypoints)
    points = np.full((19, 2), -1.0, dtype=np.float32)
    points[0], points[1], points[2] = (0.5, 0.5), (0.3, 0.6), (0.2, 0.2)
    _, _, zoomed = reframe_sample(pixels, mask, points, 0.5)  # the middle half of the square
    np.testing.assert_allclose(zoomed[:3], [(0.5, 0.5), (0.1, 0.7), (-1, -1)], atol=1e-6)  # (0.2, 0.2) left the window
    assert (zoomed[3:] == -1).all()


def test_reframing_moves_a_marked_pixel_exactly_as_its_keypoint():
    rng = np.random.default_rng(3)
    for _ in range(20):
        pixels = np.zeros((48, 48, 3), dtype=np.float32)
        row, column = rng.integers(12, 36, size=2)
        pixels[row - 1 : row + 2, column - 1 : column + 2] = 1.0  # a bright 3 x 3 dot
        points = np.full((19, 2), -1.0, dtype=np.float32)
        points[7] = ((column + 0.5) / 48, (row + 0.5) / 48)
        scale, shift = rng.uniform(0.85, 1.15), tuple(rng.uniform(-0.08, 0.08, size=2))
        moved, _, moved_points = reframe_sample(pixels, np.ones((48, 48), np.int64), points, scale, shift)
        weights = moved[..., 0] / moved[..., 0].sum()
        centre = ((weights * np.arange(48)[None, :]).sum(), (weights * np.arange(48)[:, None]).sum())  # (x, y)
        np.testing.assert_allclose(centre, moved_points[7] * 48 - 0.5, atol=0.3)


def test_a_wider_cut_continues_the_picture_as_its_mirror_or_as_a_flat_wall_that_counts_as_content():
    pixels = np.random.default_rng(1).random((20, 20, 3)).astype(np.float32)
    mask = np.ones((20, 20), dtype=np.int64)
    mask[:, 16:] = 0  # square padding at the right: stays padding where the mirror brings it back
    keypoints = full_body().numpy()
    mirrored, mirrored_mask, _ = reframe_sample(pixels, mask, keypoints, 2.0)
    np.testing.assert_allclose(mirrored[5:15, 5:15], (pixels[0::2, 0::2] + pixels[1::2, 1::2] + pixels[0::2, 1::2] + pixels[1::2, 0::2])[:10, :10] / 4, atol=1e-5)
    np.testing.assert_allclose(mirrored[5:15, 4], mirrored[5:15, 5], atol=1e-6)  # the mirror continues the edge
    assert not mirrored_mask[:, 13:17].any() and mirrored_mask[5:15, 5:13].all()
    wall = np.array([0.2, 0.4, 0.6], dtype=np.float32)
    walled, walled_mask, walled_points = reframe_sample(pixels, mask, keypoints, 2.0, fill=wall)
    assert np.allclose(walled[:5], wall) and np.allclose(walled[:, :5], wall) and walled_mask[:5].all()
    shown = (keypoints >= 0).all(axis=1)
    np.testing.assert_allclose(walled_points[shown], (keypoints[shown] - 0.5) / 2 + 0.5, atol=1e-6)


def test_reframing_off_by_default_draws_nothing_and_on_it_changes_the_sample():
    pixels = np.random.default_rng(2).random((16, 16, 3)).astype(np.float32)
    mask, keypoints = np.ones((16, 16), dtype=np.int64), full_body().numpy()
    default = TrainingAugmentation()
    assert default.reframe_prob == 0.0
    augmented = default(pixels, mask, keypoints, np.random.default_rng(7))
    rng = np.random.default_rng(7)  # the draws of recipes v1-v3, trained before reframing existed
    expected = flip_sample(pixels, mask, keypoints) if rng.random() < 0.5 else (pixels, mask, keypoints)
    expected = (photometric_jitter(expected[0], expected[1], rng, 0.2, 0.2, 0.2, 0.05), expected[1], expected[2])
    for got, want in zip(augmented, expected, strict=True):
        assert np.array_equal(got, want)
    reframed = TrainingAugmentation(reframe_prob=1.0, flip_prob=0.0)(pixels, mask, keypoints, np.random.default_rng(7))
    assert not np.allclose(reframed[2], keypoints) and reframed[0].shape == pixels.shape


def padded_photo(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A 48 px square holding a 20-wide, 40-high photo (columns 14-33, rows 4-43) in grey padding."""
    pixels = np.full((48, 48, 3), 0.5, np.float32)
    mask = np.zeros((48, 48), np.int64)
    pixels[4:44, 14:34] = np.random.default_rng(seed).random((40, 20, 3)).astype(np.float32) * 0.1  # dark photo
    mask[4:44, 14:34] = 1
    return pixels, mask


def test_random_erasing_fills_one_rectangle_of_the_photo_within_the_drawn_area_and_shape():
    areas, aspects = [], []
    for seed in range(300):
        pixels, mask = padded_photo()
        erased = random_erasing(pixels.copy(), mask, np.random.default_rng(seed), 0.02, 0.4, 0.3)
        changed = (erased != pixels).any(axis=-1)
        if not changed.any():
            continue  # ten rectangles that did not fit: nothing erased, as in the paper
        rows, columns = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        height, width = rows[-1] + 1 - rows[0], columns[-1] + 1 - columns[0]
        # One filled rectangle, inside the photo (the padding keeps its value), noise in [0, 1].
        assert mask[changed].all() and (erased[mask == 0] == 0.5).all()
        assert changed[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1].mean() > 0.97  # noise can repeat a value
        assert erased.dtype == np.float32 and erased.min() >= 0 and erased.max() <= 1
        areas.append(height * width / (40 * 20))
        aspects.append(height / width)
    assert len(areas) > 250
    assert 0.015 <= min(areas) and max(areas) <= 0.45  # the drawn share of the photo's area, up to rounding
    assert 0.2 <= min(aspects) and max(aspects) <= 1 / 0.2
    assert 0.15 <= float(np.mean(areas)) <= 0.25  # uniform in [0.02, 0.4]: mean 0.21, less the large misses


def test_random_erasing_off_by_default_draws_nothing_on_it_leaves_mask_and_keypoints_and_spares_unlabelled_faces():
    from sapiensid_hf.training.dataset import UnlabelledSamples

    pixels, mask = padded_photo()
    keypoints = full_body().numpy()
    assert TrainingAugmentation().random_erasing_prob == 0.0
    plain, rng_plain = TrainingAugmentation(), np.random.default_rng(5)
    off, rng_off = TrainingAugmentation(random_erasing_prob=0.0, random_erasing_max_area=0.3), np.random.default_rng(5)
    for got, want in zip(off(pixels, mask, keypoints, rng_off), plain(pixels, mask, keypoints, rng_plain), strict=True):
        assert np.array_equal(got, want)
    assert rng_off.random() == rng_plain.random()  # no extra draws: the recipes repeat exactly
    always = TrainingAugmentation(random_erasing_prob=1.0, flip_prob=0.0, brightness=0, contrast=0, saturation=0, grayscale_prob=0)
    erased, erased_mask, erased_keypoints = always(pixels, mask, keypoints, np.random.default_rng(5))
    assert not np.array_equal(erased, pixels) and np.array_equal(erased_mask, mask)
    assert np.array_equal(erased_keypoints, keypoints)  # an occluder hides the person; it does not move them
    unlabelled = UnlabelledSamples(None, np.arange(3), always, None)
    assert unlabelled.augmentation.random_erasing_prob == 0.0 and always.random_erasing_prob == 1.0


# ----------------------------------------------------------------------------------------- samplers


def make_stream(process_index=0, num_processes=2, accumulation=2, mode="variable", order=None):
    schedule = MaskingSchedule(108, 4, mode=mode, max_batch_size=8, seed=5)
    order = order or ShuffledOrder(60, seed=5)
    return TrainingStream(order, order.epoch_length, schedule, num_processes, process_index, accumulation, seed=5)


def take(iterator, count):
    return [next(iterator) for _ in range(count)]


def test_stream_processes_read_disjoint_rows_with_one_batch_size_per_step():
    first, second = (take(make_stream(index).micro_batches(), 30) for index in (0, 1))
    for mine, theirs in zip(first, second, strict=True):
        assert (mine.step, mine.micro, mine.epoch) == (theirs.step, theirs.micro, theirs.epoch)
        assert len(mine.rows) == len(theirs.rows) and not set(mine.rows) & set(theirs.rows)
    for epoch in {batch.epoch for batch in first}:
        rows = np.concatenate([b.rows for b in first + second if b.epoch == epoch])
        assert len(rows) == len(set(rows.tolist()))  # no row twice within an epoch


def test_stream_resumes_exactly_where_an_uninterrupted_run_is():
    full = take(make_stream(1).micro_batches(), 40)
    resumed = take(make_stream(1).micro_batches(start_step=7), 26)
    expected = [batch for batch in full if batch.step >= 7][:26]
    for a, b in zip(resumed, expected, strict=True):
        assert (a.step, a.micro, a.epoch) == (b.step, b.micro, b.epoch)
        assert np.array_equal(a.rows, b.rows) and np.array_equal(a.seeds, b.seeds)


def test_identity_balanced_order_visits_every_identity_equally():
    labels = np.repeat(np.arange(5), [1, 2, 3, 10, 40])
    order = IdentityBalancedOrder(labels, images_per_identity=4, seed=0)
    epoch = order(0)
    assert len(epoch) == order.epoch_length == 20
    assert np.array_equal(np.bincount(labels[epoch]), [4] * 5)
    groups = labels[epoch].reshape(5, 4)
    assert (groups == groups[:, :1]).all()  # an identity's images stay together
    assert not np.array_equal(order(0), order(1))


def test_stream_refuses_a_dataset_smaller_than_one_batch():
    with pytest.raises(ValueError, match="lower batch_size"):
        make_stream(order=ShuffledOrder(10, 0))


# ------------------------------------------------------------------------------------------- config


def test_config_file_round_trip_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {dataset_path: d}\noptimizer: {lr: 1e-3}\nmasking: {mode: fixed, mask_ratio: 0.5}\n")
    config = TrainingConfig.from_file(path)
    assert config.optimizer.lr == 1e-3 and config.masking.mask_ratio == 0.5
    changed = config.with_overrides(["optimizer.lr=3e-4", "schedule.max_steps=7", "model.overrides={hidden_size: 64}"])
    assert (changed.optimizer.lr, changed.schedule.max_steps, changed.model.overrides) == (3e-4, 7, {"hidden_size": 64})
    json_path = tmp_path / "run.json"
    changed.save(json_path)
    assert TrainingConfig.from_file(json_path) == changed


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_the_fused_optimizer_makes_the_same_updates_as_the_per_tensor_one(name):
    """optimizer.fused: torch's one-kernel update; the same AdamW / SGD up to float rounding, decay groups kept."""

    def trained(fused: bool | None) -> list[torch.Tensor]:  # None: the starting weights
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 5))
        optimizer = build_optimizer(model, OptimizerConfig(name=name, lr=1e-2, weight_decay=0.1, fused=bool(fused)), HeadConfig())
        assert optimizer.defaults["fused"] is (True if fused else None)
        generator = torch.Generator().manual_seed(1)
        for _ in range(20 if fused is not None else 0):
            inputs, targets = torch.randn(16, 12, generator=generator), torch.randint(0, 5, (16,), generator=generator)
            torch.nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return [parameter.detach().clone() for parameter in model.parameters()]

    start, loop, fused = trained(None), trained(False), trained(True)
    for before, a, b in zip(start, loop, fused, strict=True):
        assert (a - before).abs().max() > 1e-3  # the steps moved the weights
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: {dataset_path: d}\noptimiser: {lr: 1}\n", "unknown key.*optimiser"),
        ("data: {dataset_path: d, num_workers: two}\n", "data.num_workers must be an integer"),
        ("data: {dataset_path: d}\nmasking: {mode: sometimes}\n", "masking.mode must be one of"),
        ("data: {dataset_path: d}\nbatch_size: 1\n", "batch_size must be at least 2"),
        ("optimizer: {lr: 1}\n", "exactly one of data.dataset_path"),
        ("- a\n- b\n", "mapping at the top level"),
        ("data: {dataset_path: d}\ndistill: {teacher: vgg}\n", "distill.teacher must be one of dlib_resnet_v1"),
        ("data: {dataset_path: d}\ndistill: {teacher: dlib_resnet_v1}\n", "needs distill.teacher_cache"),
        ("data: {dataset_path: d}\ndistill: {teacher: dlib_resnet_v1, teacher_cache: t, unlabelled_manifest: m}\n",
         "needs distill.unlabelled_keypoint_cache and distill.unlabelled_teacher_cache"),
        ("data: {dataset_path: d}\ndistill: {teacher: dlib_resnet_v1, teacher_cache: t, unlabelled_batch_size: 1}\n",
         "unlabelled_batch_size must be at least 2"),
        ("data: {dataset_path: d}\ndistill: {teacher: dlib_resnet_v1, teacher_cache: t, relation_weight: -1}\n",
         "must be >= 0"),
        ("data: {dataset_path: d}\naugmentation: {reframe_prob: 1.5}\n", "augmentation.reframe_prob must lie in"),
        ("data: {dataset_path: d}\naugmentation: {reframe_scale: 1.0}\n", "augmentation.reframe_scale must lie in"),
        ("data: {dataset_path: d}\naugmentation: {random_erasing_prob: -0.1}\n", "augmentation.random_erasing_prob must lie in"),
        ("data: {dataset_path: d}\naugmentation: {random_erasing_min_area: 0.5, random_erasing_max_area: 0.3}\n",
         "0 < random_erasing_min_area <= random_erasing_max_area < 1"),
        ("data: {dataset_path: d}\naugmentation: {random_erasing_min_aspect: 2}\n", "random_erasing_min_aspect must lie in"),
        ("data: {dataset_path: d}\noptimizer: {fused: sometimes}\n", "optimizer.fused must be true or false"),
    ],
)
def test_config_errors_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TrainingConfig.from_file(path)


def test_shipped_configs_load(repo_root):
    for path in sorted((repo_root / "examples" / "configs").glob("*.yaml")):
        TrainingConfig.from_file(path)


# ------------------------------------------------------------------------------------ keypoint cache


class CountingDetector:
    """A stand-in detector: a face whose nose x follows the image's mean brightness (so results differ)."""

    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        keypoints = face_close_up().numpy()
        keypoints[0, 0] = 0.3 + 0.4 * float(image.mean()) / 255.0  # inside the 20 x 30 image's square
        return KeypointResult(keypoints=keypoints, person_boxes=np.array([[0, 0, 1, 1]], np.float32), chosen_person=0,
                              source="face")  # fmt: skip


def png_bytes(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 30), (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_keypoint_cache_detects_once_counts_unreadable_and_resumes(tmp_path):
    images = [png_bytes(40), b"not an image at all", png_bytes(200), b"", png_bytes(120)]
    paths = [f"img{i}.png" for i in range(len(images))]
    detector = CountingDetector()
    processor = SapiensIDImageProcessor(size=32, detector=detector)
    cache = build_keypoint_cache(images.__getitem__, paths, processor, tmp_path / "cache", batch_size=2, chunk_size=2,
                                 progress=False)  # fmt: skip
    assert cache.readable.tolist() == [True, False, True, False, True]
    assert cache.num_unreadable == 2 and {entry["path"] for entry in cache.unreadable} == {"img1.png", "img3.png"}
    assert cache.keypoints[1].min() == -1 and not cache.person_found[1]
    assert cache.keypoints[0, 0, 0] < cache.keypoints[4, 0, 0] < cache.keypoints[2, 0, 0]
    direct = processor([images[0], images[2], images[4]], return_tensors="np")["keypoints"]
    assert np.array_equal(cache.keypoints[[0, 2, 4]], direct)
    calls = detector.calls
    again = build_keypoint_cache(images.__getitem__, paths, processor, tmp_path / "cache", progress=False)
    assert detector.calls == calls and np.array_equal(again.keypoints, cache.keypoints)  # read, not re-detected
    with pytest.raises(KeypointCacheMismatchError, match="different dataset"):
        KeypointCache.load(tmp_path / "cache", dataset_fingerprint(paths[:4]))


def test_keypoint_cache_build_resumes_from_finished_chunks(tmp_path):
    images = [png_bytes(value) for value in (10, 60, 110, 160)]
    paths = [f"{i}.png" for i in range(4)]
    folder = tmp_path / "cache"
    first = build_keypoint_cache(images.__getitem__, paths, SapiensIDImageProcessor(size=32, detector=CountingDetector()),
                                 folder, chunk_size=2, progress=False)  # fmt: skip
    # Simulate an interrupted build: the merged files gone, one finished chunk left.
    (folder / "meta.json").unlink()
    (folder / "chunks").mkdir()
    (folder / "chunks" / "keypoint_rules.json").write_text(json.dumps(keypoint_rules_of(SapiensIDImageProcessor(size=32, detector=CountingDetector()))))
    np.savez(folder / "chunks" / "chunk_0000000000.npz", rows=np.arange(2), keypoints=first.keypoints[:2],
             person_found=first.person_found[:2], face_found=first.face_found[:2], readable=first.readable[:2],
             unreadable=np.asarray("[]"))  # fmt: skip
    detector = CountingDetector()
    # num_workers=0: the counting detector counts calls made in this process.
    rebuilt = build_keypoint_cache(images.__getitem__, paths, SapiensIDImageProcessor(size=32, detector=detector), folder,
                                   chunk_size=2, progress=False, num_workers=0)  # fmt: skip
    assert detector.calls == 2 and np.array_equal(rebuilt.keypoints, first.keypoints)


def test_keypoint_cache_made_under_other_rules_is_detected_again(tmp_path):
    images = [png_bytes(value) for value in (10, 60, 110)]
    paths = [f"{i}.png" for i in range(3)]
    folder = tmp_path / "cache"
    old_rules = SapiensIDImageProcessor(size=32, detector=CountingDetector(), person_crop_fallback=False)
    build_keypoint_cache(images.__getitem__, paths, old_rules, folder, progress=False)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["keypoint_rules"]["version"] == 1 and meta["keypoint_rules"]["person_crop_fallback"] is False
    detector = CountingDetector()
    current = SapiensIDImageProcessor(size=32, detector=detector)
    rebuilt = build_keypoint_cache(images.__getitem__, paths, current, folder, progress=False, num_workers=0)
    assert detector.calls == 3  # every image detected again, not the old cache reused
    assert rebuilt.meta["keypoint_rules"] == keypoint_rules_of(current)
    # A cache without any rules record (made before rules were recorded) is not trusted either.
    meta = json.loads((folder / "meta.json").read_text())
    del meta["keypoint_rules"]
    (folder / "meta.json").write_text(json.dumps(meta))
    build_keypoint_cache(images.__getitem__, paths, current, folder, progress=False, num_workers=0)
    assert detector.calls == 6


# ------------------------------------------------------------------------------------------- launch


def test_accelerate_cpu_launcher_detection_and_process_count():
    from sapiensid_hf.training.launch import requested_processes, started_by_accelerate_cpu_launcher

    single = {"ACCELERATE_USE_CPU": "True", "MASTER_PORT": "29500", "MASTER_ADDR": "127.0.0.1"}
    assert started_by_accelerate_cpu_launcher(single)
    assert not started_by_accelerate_cpu_launcher({**single, "WORLD_SIZE": "2", "LOCAL_RANK": "0"})  # torchrun
    assert not started_by_accelerate_cpu_launcher({"ACCELERATE_USE_CPU": "True"})  # one process was asked for
    assert requested_processes(["accelerate", "launch", "--num_processes", "2", "--cpu", "train.py"]) == 2
    assert requested_processes(["accelerate", "launch", "--num_processes=4", "train.py"]) == 4
    assert requested_processes(["accelerate", "launch", "--cpu", "train.py"]) is None


# ---------------------------------------------------------------------------------- train / val rows


def small_view(roles=None):
    import datasets

    from sapiensid_hf.training.dataset import DatasetView

    pids = [0, 0, 0, 1, 1, 2, 2, 2, 3]
    columns = {"path": [f"{i}.png" for i in range(len(pids))], "pid": pids}
    if roles is not None:
        columns["role"] = roles
    return DatasetView(datasets.Dataset.from_dict(columns))


def test_holdout_identities_leave_training_and_split_into_query_and_gallery():
    from sapiensid_hf.training.dataset import split_rows

    config = TrainingConfig.from_dict({"data": {"dataset_path": "x"}, "validation": {"source": "holdout",
                                                                                        "holdout_identities": 1}})  # fmt: skip
    view = small_view()
    readable = np.ones(9, dtype=bool)
    readable[1] = False
    train_rows, validation = split_rows(view, readable, config.data, config.validation, seed=0)
    held = set(view.pids[validation.query].tolist())
    assert len(held) == 1 and held <= {0, 1, 2}  # only identities with 2+ readable images qualify
    assert not held & set(view.pids[train_rows.rows].tolist())
    assert 1 not in train_rows.rows and 1 not in validation.gallery  # unreadable rows are nowhere
    assert set(view.pids[validation.gallery].tolist()) == held
    assert train_rows.labels.max() == train_rows.num_classes - 1


def test_role_split_and_refusals():
    from sapiensid_hf.training.dataset import TrainingDataError, split_rows

    roles = ["train", "train", "query", "train", "gallery", "train", "gallery", "query", "train"]
    config = TrainingConfig.from_dict({"data": {"dataset_path": "x"}, "validation": {"source": "roles"}})
    train_rows, validation = split_rows(small_view(roles), np.ones(9, bool), config.data, config.validation, seed=0)
    assert train_rows.rows.tolist() == [0, 1, 3, 5, 8]
    assert validation.query.tolist() == [2, 7] and validation.gallery.tolist() == [4, 6]
    with pytest.raises(TrainingDataError, match="0 'gallery' rows"):
        split_rows(small_view(["train"] * 3 + ["query"] * 6), np.ones(9, bool), config.data, config.validation, seed=0)
    plain = TrainingConfig.from_dict({"data": {"dataset_path": "x"}})
    with pytest.raises(TrainingDataError, match="single identity"):
        split_rows(small_view(["train"] * 3 + ["query"] * 6), np.ones(9, bool), plain.data, plain.validation, seed=0)
    with pytest.raises(TrainingDataError, match="no images"):
        split_rows(small_view(roles), np.zeros(9, bool), plain.data, plain.validation, seed=0)


def test_data_loader_names_resolve_to_sapiensid_hf_data_loaders():
    from sapiensid_hf.data.market1501 import load_market1501
    from sapiensid_hf.training.dataset import _find_loader

    assert _find_loader("market1501") is load_market1501
    with pytest.raises(ConfigError, match="available: .*market1501"):
        _find_loader("no_such_benchmark")


def test_margin_warmup_ramps_the_adaface_margin_from_zero():
    from sapiensid_hf.training.adaface import AdaFaceHead
    from sapiensid_hf.training.optimization import margin_fraction

    assert [margin_fraction(step, 4) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert margin_fraction(0, 0) == 1.0
    torch.manual_seed(0)
    head = AdaFaceHead(8, 5, margin=0.4).eval()
    embeddings, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    cosine = torch.nn.functional.normalize(embeddings) @ torch.nn.functional.normalize(head.weight).T
    head.margin_fraction = 0.0
    plain = head(embeddings, labels)
    # No margin: the logits are the scaled cosines (clamped as the head clamps them).
    assert torch.allclose(plain.logits, 64.0 * cosine.clamp(-1 + 1e-3, 1 - 1e-3), atol=1e-4)
    head.margin_fraction = 1.0
    full = head(embeddings, labels)
    rows = torch.arange(6)
    assert (full.logits[rows, labels] < plain.logits[rows, labels]).all()  # the margin makes the target harder
    assert (full.loss > plain.loss).all()
