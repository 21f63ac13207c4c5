"""Retina Patch: the kept patches of the three ROI levels tile the image exactly once."""

import pytest
import torch
from model_inputs import MISSING, POSES, face_close_up, full_body

from sapiensid_hf.modeling import SapiensIDConfig, SapiensIDModel
from sapiensid_hf.modeling.retina_patch import (
    SapiensIDRetinaPatchEmbeddings,
    box_sampling_axes,
    sincos_2d_position_table,
)
from sapiensid_hf.modeling.retina_rois import (
    FACE_POINTS,
    UPPER_BODY_POINTS,
    augment_keypoints,
    compute_roi_boxes,
    official22_to_kp19,
)

SAMPLES_PER_AXIS = 384 * 2  # sample points strictly inside pixels, off every patch boundary


@pytest.fixture(scope="module")
def model() -> SapiensIDModel:
    # Full input geometry (384 px, 32 px patches) with a narrow width: tiling does not depend on width.
    return SapiensIDModel(SapiensIDConfig.tiny(image_size=384, patch_size=32)).eval()


def token_rectangles(tokens, grid: int) -> list[list[torch.Tensor]]:
    """Normalised xyxy rectangle of every visible token, per image."""
    rectangles = []
    for boxes, visible in zip(tokens.level_boxes, tokens.visible, strict=True):
        mine = []
        for token in visible.nonzero().flatten().tolist():
            level, cell = divmod(token, grid * grid)
            row, col = divmod(cell, grid)
            x1, y1, x2, y2 = boxes[level].tolist()
            width, height = (x2 - x1) / grid, (y2 - y1) / grid
            mine.append(torch.tensor([x1 + col * width, y1 + row * height, x1 + (col + 1) * width, y1 + (row + 1) * height]))
        rectangles.append(mine)
    return rectangles


def coverage(rectangles: list[torch.Tensor]) -> torch.Tensor:
    """How many rectangles cover each sample point of the unit square."""
    centers = (torch.arange(SAMPLES_PER_AXIS, dtype=torch.float64) + 0.37) / SAMPLES_PER_AXIS
    count = torch.zeros(SAMPLES_PER_AXIS, SAMPLES_PER_AXIS, dtype=torch.int32)
    for x1, y1, x2, y2 in (r.double().tolist() for r in rectangles):
        inside_x = (centers >= x1) & (centers < x2)
        inside_y = (centers >= y1) & (centers < y2)
        count += (inside_y[:, None] & inside_x[None, :]).int()
    return count


def embed_tokens(model, keypoints, pixel_mask=None):
    keypoints = keypoints[None] if keypoints.ndim == 2 else keypoints
    size = model.config.image_size
    pixels = torch.randn(keypoints.shape[0], 3, size, size)
    faces, bodies = model.roi_boxes_from_keypoints(keypoints)
    return model.embeddings(pixels, faces, bodies, pixel_mask)


@pytest.mark.parametrize("pose", sorted(POSES))
def test_visible_patches_tile_the_image_exactly_once(model, pose):
    tokens = embed_tokens(model, POSES[pose]())
    (rectangles,) = token_rectangles(tokens, model.config.grid_size)
    count = coverage(rectangles)
    assert int(count.min()) == 1 and int(count.max()) == 1, f"{pose}: covered {count.min()}..{count.max()} times"


def test_face_gets_finer_patches_than_body_and_body_than_full_image(model):
    tokens = embed_tokens(model, full_body())
    grid = model.config.grid_size
    boxes = tokens.level_boxes[0]
    areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / grid**2).tolist()
    assert areas[2] < areas[1] < areas[0]
    levels = tokens.visible[0].reshape(3, -1).sum(dim=1)
    assert (levels > 0).all(), "each of the three levels contributes patches"


def test_square_padding_drops_full_image_patches_and_nothing_else(model):
    size = model.config.image_size
    pixel_mask = torch.ones(1, size, size, dtype=torch.long)
    pixel_mask[:, :, : size // 4] = 0  # a portrait photo padded on the left
    tokens = embed_tokens(model, full_body(center_x=0.6), pixel_mask)
    (rectangles,) = token_rectangles(tokens, model.config.grid_size)
    count = coverage(rectangles)
    content = torch.arange(SAMPLES_PER_AXIS) >= SAMPLES_PER_AXIS // 4
    assert (count[:, content] == 1).all()
    assert (count[:, ~content] == 0).all()


@pytest.mark.parametrize("strip_rows", [1, 8, 15])  # content rows of 384: 1/384 .. under half a 32-px patch
def test_a_very_wide_photo_keeps_its_fullest_patches(strip_rows):
    model = SapiensIDModel(SapiensIDConfig.tiny(image_size=384, patch_size=32)).eval()
    size, patch = 384, 32
    pixel_mask = torch.zeros(2, size, size, dtype=torch.long)
    top = size // 2 - strip_rows // 2
    pixel_mask[0, top : top + strip_rows] = 1  # a wide strip, centred like the processor pads it
    pixel_mask[1, :, : size // 4] = 1  # an ordinary padded photo beside it
    tokens = embed_tokens(model, POSES["all_missing"]().expand(2, -1, -1), pixel_mask)
    grid = size // patch
    strip = tokens.visible[0].reshape(3, grid, grid)[0]
    # Only patch rows that hold the strip, all of the row that holds the most of it, nothing else.
    rows = {row for row in range(grid) if pixel_mask[0, row * patch : (row + 1) * patch].any()}
    fullest = max(rows, key=lambda row: int(pixel_mask[0, row * patch : (row + 1) * patch].sum()))
    assert strip[fullest].all() and strip.sum() >= grid and set(strip.any(dim=1).nonzero().flatten().tolist()) <= rows
    # The other photo's tokens follow the ordinary more-than-half rule.
    expected = torch.zeros(grid, grid, dtype=torch.bool)
    expected[:, : grid // 4] = True
    assert torch.equal(tokens.visible[1].reshape(3, grid, grid)[0], expected)
    with torch.no_grad():
        pixels = torch.randn(2, 3, size, size)
        embedding = model(pixels, POSES["all_missing"]().expand(2, -1, -1).contiguous(), pixel_mask=pixel_mask).embeddings
    assert torch.isfinite(embedding).all()


def test_missing_face_and_body_leave_only_the_full_image(model):
    tokens = embed_tokens(model, POSES["all_missing"]())
    grid_tokens = model.config.tokens_per_level
    assert tokens.visible[0, :grid_tokens].all()
    assert not tokens.visible[0, grid_tokens:].any()


def test_full_image_positions_are_the_sincos_table(model):
    tokens = embed_tokens(model, full_body())
    grid_tokens = model.config.tokens_per_level
    table = sincos_2d_position_table(model.config.grid_size, model.config.hidden_size)
    torch.testing.assert_close(tokens.positions[0, :grid_tokens], table)


def test_roi_boxes_follow_the_official_kp19_rules():
    keypoints = full_body()[None]
    faces, bodies = compute_roi_boxes(keypoints)
    face_points = keypoints[0, :5]
    # Face box: square around the nose-weighted centre, radius = farthest point, padded by 30 %.
    center = (face_points.amin(0) + face_points.amax(0)) / 2
    center = (center + face_points[0]) / 2
    half = (face_points - center).norm(dim=-1).max() * 1.3
    torch.testing.assert_close(faces[0], torch.cat([center - half, center + half]))
    # Upper-body box: square on the longer side of the face + ears + shoulders extent, padded by 30 %.
    upper = keypoints[0, :9]
    center = (upper.amin(0) + upper.amax(0)) / 2
    half = (upper.amax(0) - upper.amin(0)).max() * 1.3 / 2
    torch.testing.assert_close(bodies[0], torch.cat([center - half, center + half]))


def test_roi_boxes_need_enough_points_and_a_shoulder():
    keypoints = full_body()[None].clone()
    keypoints[0, 1:5] = -1  # only the nose: one face point is not enough for a face box
    keypoints[0, 7:9] = -1  # no shoulder: no upper-body box even with face points and ears
    faces, bodies = compute_roi_boxes(keypoints)
    assert (faces == -1).all() and (bodies == -1).all()


def test_official_22_point_layout_maps_to_kp19():
    official = torch.arange(44, dtype=torch.float32).reshape(1, 22, 2)
    mapped = official22_to_kp19(official)
    # face 7 = face-detector nose, eyes, mouth corners, then YOLO ears; then YOLO shoulders .. ankles.
    assert mapped[0, :, 0].tolist() == [2 * i for i in (19, 17, 18, 20, 21, 3, 4, *range(5, 17))]
    with pytest.raises(ValueError, match=r"\(B, 22, 2\)"):
        official22_to_kp19(torch.zeros(1, 19, 2))


def test_token_pixels_equal_resampling_each_roi_then_unfolding(model):
    """Sampling only kept tokens must give the official crop-resize-unfold pixels."""
    size, patch = model.config.image_size, model.config.patch_size
    keypoints = full_body()[None]
    pixels = torch.randn(1, 3, size, size)
    faces, bodies = model.roi_boxes_from_keypoints(keypoints)
    tokens = model.embeddings(pixels, faces, bodies)
    every_token = torch.arange(3 * model.config.tokens_per_level)[None]
    sampled = model.embeddings.token_pixels(pixels, tokens, every_token)
    crops = torch.nn.functional.grid_sample(
        pixels.expand(3, -1, -1, -1), tokens.sampling_grid[0], align_corners=False
    )  # each level's ROI resized to the full input size
    unfolded = torch.nn.Unfold(kernel_size=patch, stride=patch)(crops).transpose(1, 2).reshape(1, -1, 3 * patch * patch)
    assert torch.equal(sampled, unfolded)


def per_pixel_visibility(level_boxes: torch.Tensor, size: int, patch: int) -> torch.Tensor:
    """The official rule, pixel by pixel: a map of the highest level whose box touches each pixel,
    resampled (nearest) into each level's image, and a patch kept where over half its pixels are its level's."""
    batch = level_boxes.shape[0]
    pixels = torch.arange(size, dtype=torch.float32)
    x1, y1, x2, y2 = (level_boxes[..., i, None] for i in range(4))
    in_x, in_y = (pixels + 1 > x1 * size) & (pixels < x2 * size), (pixels + 1 > y1 * size) & (pixels < y2 * size)
    levels = torch.arange(3, dtype=torch.float32)
    importance = ((in_y[..., :, None] & in_x[..., None, :]).float() * levels[None, :, None, None]).amax(dim=1)
    xs, ys = box_sampling_axes(level_boxes.reshape(-1, 4), size)
    grid = torch.stack([xs[:, None, :].expand(-1, size, -1), ys[:, :, None].expand(-1, -1, size)], dim=-1)
    sampled = torch.nn.functional.grid_sample(
        importance.repeat_interleave(3, dim=0)[:, None], grid, mode="nearest", align_corners=False
    )  # fmt: skip
    owned = (sampled == levels.repeat(batch)[:, None, None, None]).float()
    return (torch.nn.functional.avg_pool2d(owned, patch).flatten(1) > 0.5).reshape(batch, -1)


@pytest.mark.parametrize(("size", "patch"), [(96, 16), (384, 32), (112, 14)])
def test_patch_ownership_counted_per_row_and_column_equals_the_per_pixel_rule(size, patch):
    """The model counts each patch's pixels from per-row and per-column box membership; it must keep
    exactly the patches the official per-pixel map keeps, boxes on pixel edges (ties) and outside the image included."""
    embeddings = SapiensIDRetinaPatchEmbeddings(SapiensIDConfig.tiny(image_size=size, patch_size=patch))
    generator = torch.Generator().manual_seed(size + patch)
    mismatched, kept = 0, 0
    for trial in range(30):
        centres = torch.rand(64, 2, 2, generator=generator) * 1.4 - 0.2
        extents = torch.rand(64, 2, 2, generator=generator) ** 2 * 0.8 + 1e-3
        if trial % 2:  # on pixel edges and half-pixel centres, where nearest sampling ties
            centres, extents = torch.round(centres * size * 2) / (size * 2), torch.round(extents * size) / size
        rois = torch.cat([centres - extents / 2, centres + extents / 2], dim=-1)  # upper body, face
        level_boxes = torch.cat([torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(64, 1, 4), rois], dim=1)
        xs, ys = box_sampling_axes(level_boxes.reshape(-1, 4), size)
        visible = embeddings._visible_tokens(level_boxes, xs, ys, size, size, None)
        expected = per_pixel_visibility(level_boxes, size, patch)
        mismatched += int((visible != expected).sum())
        kept += int(expected.sum())
    assert mismatched == 0
    assert 0 < kept < 30 * 64 * 3 * (size // patch) ** 2  # both outcomes occur


def test_part_drops_take_a_part_from_the_batch_but_never_every_point_of_a_row():
    """The official rule drops the face or the upper-body points of the whole batch. A face close-up has
    no other point: emptied, it would get the same embedding as every other emptied face of the batch
    (a whole training batch of faces collapsed to one vector, measured), so it keeps its points."""
    close_up = face_close_up()
    close_up[5:7] = MISSING  # the five face points only, as a face detector gives them
    batch = torch.stack([full_body(), close_up, torch.full((19, 2), MISSING)])
    dropped_parts = set()
    for seed in range(40):
        torch.manual_seed(seed)
        augmented = augment_keypoints(batch, point_drop_prob=0.0, part_drop_prob=1.0)
        body_lost = tuple(i for i in range(19) if bool((augmented[0, i] == MISSING).all()))
        assert body_lost in (FACE_POINTS, UPPER_BODY_POINTS)  # the official part drop, whole part
        dropped_parts.add(body_lost)
        assert torch.equal(augmented[1], batch[1])  # the close-up keeps its face
        assert bool((augmented[2] == MISSING).all())  # a row without points stays without
    assert dropped_parts == {FACE_POINTS, UPPER_BODY_POINTS}
    torch.manual_seed(0)
    every_point = augment_keypoints(batch, point_drop_prob=1.0, part_drop_prob=0.0)
    assert torch.equal(every_point[:2], batch[:2])  # dropping every point would empty the rows
