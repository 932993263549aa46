"""Depth-split patches and angle weights on real rasterized geometry (a tilted plane, a grazing wall)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at
from meshstyle.config import LossConfig, RasterConfig, StylizeConfig
from meshstyle.pipeline import MIN_LEVEL_HEIGHT, pyramid_heights, reference_level
from meshstyle.stylization.patches import (active_boxes, angle_weight, depth_weights, level_of_depth,
                               merged_levels, reference_depth, split_by_depth)
from meshstyle.raster.rasterizer import Rasterizer

HEIGHT, WIDTH = 96, 128


def tilted_plane_pyramid(raster: RasterConfig, tilt_deg: float = 70.0, heights: list[int] | None = None):
    """A 20 m x 20 m floor seen from 1.5 m up, looking down at the floor at a shallow angle,
    so depth grows from the bottom of the image to the top."""
    plane = trimesh.creation.box(extents=(20.0, 20.0, 0.01))
    plane.apply_translation((0, 8.0, -0.005))
    uv = (plane.vertices[plane.faces][..., :2] / 20.0 + 0.5).astype(np.float32)
    rasterizer = Rasterizer(np.asarray(plane.vertices), np.asarray(plane.faces, dtype=np.int64), uv)
    eye = np.array([0.0, 0.0, 1.5])
    pitch = math.radians(90.0 - tilt_deg)
    target = eye + np.array([0.0, math.cos(pitch), -math.sin(pitch)])
    camera = Camera(K=intrinsics_from_fov(WIDTH, HEIGHT, 60.0), cam_to_world=look_at(eye, target),
                    width=WIDTH, height=HEIGHT)
    heights = heights or [int(round(HEIGHT * raster.level_scale ** k)) for k in range(raster.levels)]
    return rasterizer.pyramid(camera, heights), camera


def focal_at(camera: Camera, height: int) -> float:
    return float(camera.scaled(height).K[1, 1])


@pytest.mark.parametrize("blend, max_spread", [(1.0, 1.06), (0.5, 1.5 ** 0.5 * 1.04), (0.0, 1.5 * 1.04)])
def test_level_choice_keeps_pixel_footprint_constant_in_world(blend, max_spread):
    """Linear blending keeps the footprint constant; a narrower cross-fade lets it drift by at most
    the unblended share of a level step (1.5**0.5 for blend 0.5, 1.5 for the default hard hand-over),
    never the full 2x+ of one level."""
    raster = RasterConfig(image_height=HEIGHT, levels=3, level_scale=1.5)
    pyramid, camera = tilted_plane_pyramid(raster)
    base = pyramid.levels[0]
    depths = base.depth[base.mask]
    assert float(depths.max() / depths.min()) > 3.0, "the test plane must span a wide depth range"
    reference = float(torch.quantile(depths, 0.1))
    # A pixel of level k at depth d spans d / f_k metres; with the blend weights, the weighted
    # log-size over levels must be the same at every depth inside the pyramid's range.
    log_size = torch.zeros_like(base.depth)
    total = torch.zeros_like(base.depth)
    for k, fragments in enumerate(pyramid.levels):
        share = depth_weights(pyramid, k, reference, blend)
        share = torch.nn.functional.interpolate(share[None, None], size=base.depth.shape, mode="area")[0, 0]
        log_size += share * torch.log(base.depth.clamp_min(1e-6) / focal_at(camera, fragments.height))
        total += share
    inside = base.mask & (base.depth > reference * 1.05) & (base.depth < reference * 1.5 ** 2 * 0.95)
    # Interior pixels only: the area-downsampled shares of finer levels blur at the mask edge.
    inside[:2], inside[-2:], inside[:, :2], inside[:, -2:] = False, False, False, False
    assert int(inside.sum()) > 500
    # A hard hand-over (blend 0) is a step edge, which the area resampling of the 1.5x-finer level
    # to the base grid smears over the pixels on the hand-over line: those alone may miss 1.
    exact = inside & ((total - 1.0).abs() < 0.08)
    assert int(exact.sum()) >= (0.9 if blend == 0 else 1.0) * int(inside.sum())
    inside = exact
    world_size = torch.exp(log_size[inside] / total[inside])
    wanted = reference / focal_at(camera, HEIGHT)
    spread = float(world_size.max() / world_size.min())
    # Without depth awareness one level spans the whole depth ratio (about 2x here).
    single_level = base.depth[inside] / focal_at(camera, HEIGHT)
    assert float(single_level.max() / single_level.min()) > 1.8
    assert spread < max_spread, f"pixel footprint varies {spread:.2f}x across depth"
    assert abs(float(world_size.median()) / wanted - 1.0) < 0.1
    # Far pixels go to the finest level, near ones to the coarsest.
    far = base.mask & (base.depth > reference * 1.5 ** 2)
    near = base.mask & (base.depth <= reference)
    assert torch.all(level_of_depth(base.depth[far], reference, pyramid.heights) == 2.0)
    assert torch.all(level_of_depth(base.depth[near], reference, pyramid.heights) == 0.0)


def test_patches_cover_only_their_levels_pixels_and_shares_sum_to_one():
    raster = RasterConfig(image_height=HEIGHT, levels=3, level_scale=1.5)
    config = LossConfig(depth_aware=True, angle_aware=True, min_level_share=0.0, patch_margin=4,
                        min_patch_size=16)
    pyramid, _ = tilted_plane_pyramid(raster)
    base = pyramid.levels[0]
    reference = float(torch.quantile(base.depth[base.mask], 0.3))
    patches = split_by_depth(pyramid, config, reference)
    levels = sorted({p.level for p in patches})
    assert levels == [0, 1, 2]
    assert math.isclose(sum(p.share for p in patches), 1.0, rel_tol=1e-6)
    for patch in patches:
        fragments = pyramid.levels[patch.level]
        y0, y1, x0, x1 = patch.box
        assert patch.weight.shape == (1, 1, y1 - y0, x1 - x0)
        # The level's crops hold all of its weight, each pixel's exactly once.
        full = depth_weights(pyramid, patch.level, reference, config.level_blend) * \
            angle_weight(fragments, config)
        in_crops = sum(p.weight.sum() for p in patches if p.level == patch.level)
        assert torch.isclose(in_crops, full.sum(), rtol=1e-5)
    # The finest level's crop is a strip of its image (the far end of the floor), not the whole frame.
    finest = [p for p in patches if p.level == 2]
    assert sum(p.pixels for p in finest) < 0.7 * pyramid.levels[2].height * pyramid.levels[2].width


def test_small_levels_merge_into_their_neighbours_and_no_surface_loses_its_weight():
    raster = RasterConfig(image_height=HEIGHT, levels=3, level_scale=1.5)
    pyramid, _ = tilted_plane_pyramid(raster)
    base = pyramid.levels[0]
    reference = float(torch.quantile(base.depth[base.mask], 0.3))

    def weighted_cells(min_level_share: float) -> tuple[set[int], torch.Tensor]:
        config = LossConfig(depth_aware=True, angle_aware=True, min_level_share=min_level_share,
                            patch_margin=4, min_patch_size=16)
        patches = split_by_depth(pyramid, config, reference)
        assert math.isclose(sum(p.share for p in patches), 1.0, rel_tol=1e-6)
        cells = torch.zeros(64 * 64, dtype=torch.bool)
        for patch in patches:
            cell = (patch.uv.clamp(0, 1 - 1e-6) * 64).long()
            index = (cell[..., 1] * 64 + cell[..., 0]).reshape(-1)
            cells[index[patch.weight.reshape(-1) > 0]] = True
        return {p.level for p in patches}, cells

    every_level, every_cell = weighted_cells(0.0)
    few_levels, merged_cells = weighted_cells(0.5)
    assert every_level == {0, 1, 2} and len(few_levels) < 3
    # The merged levels' surface is still painted, by the level that took its pixels over.
    assert int((every_cell & ~merged_cells).sum()) <= 0.01 * int(every_cell.sum())


def test_merged_levels_go_to_the_nearest_kept_level_coarser_on_a_tie():
    assert merged_levels([0.5, 0.02, 0.48], 0.1) == {0: (1,), 2: ()}   # a tie: the coarser level
    assert merged_levels([0.05, 0.9, 0.05], 0.1) == {1: (0, 2)}
    assert merged_levels([0.6, 0.3, 0.05, 0.05], 0.1) == {0: (), 1: (2, 3)}
    # None large enough: the largest (the first of equals) takes all; an empty level serves nothing.
    assert merged_levels([0.0, 0.3, 0.3, 0.3], 0.5) == {1: (2, 3)}
    assert merged_levels([0.5, 0.5], 0.0) == {0: (), 1: ()}


def test_two_d_ablation_uses_one_level_with_uniform_weights():
    raster = RasterConfig(image_height=HEIGHT, levels=3, level_scale=1.5)
    config = LossConfig(depth_aware=False, angle_aware=False)
    pyramid, _ = tilted_plane_pyramid(raster)
    patches = split_by_depth(pyramid, config, reference=1.0)
    assert {p.level for p in patches} == {0}
    for patch in patches:
        values = patch.weight[0, 0][patch.mask]
        assert torch.all(values == 1.0)
        assert torch.all(patch.weight[0, 0][~patch.mask] == 0.0)


def test_angle_weight_is_zero_beyond_threshold_and_monotone_in_cos():
    raster = RasterConfig(image_height=HEIGHT, levels=1)
    config = LossConfig(angle_aware=True, angle_threshold_deg=60.0)
    pyramid, _ = tilted_plane_pyramid(raster, tilt_deg=80.0)   # the floor is seen from grazing to steep
    fragments = pyramid.levels[0]
    weight = angle_weight(fragments, config)
    cos_angle = fragments.cos_angle[fragments.mask]
    values = weight[fragments.mask]
    threshold = math.cos(math.radians(60.0))
    assert bool((cos_angle < threshold).any()) and bool((cos_angle > threshold).any())
    assert torch.all(values[cos_angle < threshold - 1e-6] == 0.0)
    assert torch.all(values[cos_angle >= threshold] > 0.0)
    order = torch.argsort(cos_angle)
    assert torch.all(torch.diff(values[order]) >= 0.0), "angle weight must not drop as cos grows"
    assert torch.all(weight[~fragments.mask] == 0.0)
    flat = angle_weight(fragments, LossConfig(angle_aware=False))
    assert torch.all(flat[fragments.mask] == 1.0)


def test_crops_cut_apart_distant_regions_and_partition_the_pixels():
    active = torch.zeros(64, 200, dtype=torch.bool)
    active[10:20, 5:30] = True
    active[40:44, 150:160] = True
    crops = active_boxes(active, margin=4, min_size=24)
    assert len(crops) == 2
    covered = torch.zeros_like(active, dtype=torch.int32)
    for crop in crops:
        y0, y1, x0, x1 = crop.box
        assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 200
        assert y1 - y0 >= 24 and x1 - x0 >= 24
        core = torch.zeros_like(active)
        core[crop.core[0]:crop.core[1], crop.core[2]:crop.core[3]] = True
        box = torch.zeros_like(active)
        box[y0:y1, x0:x1] = True
        assert torch.all(box[core & active]), "a crop must hold all active pixels of its core"
        covered += (core & active).to(torch.int32)
    assert torch.equal(covered, active.to(torch.int32)), "cores must partition the active pixels"
    assert sum((c.box[1] - c.box[0]) * (c.box[3] - c.box[2]) for c in crops) < 0.4 * 64 * 200
    # An L of far pixels (a wall band and a side strip): two crops, well under its bounding box.
    corner = torch.zeros(128, 160, dtype=torch.bool)
    corner[:20] = True
    corner[:, :20] = True
    crops = active_boxes(corner, margin=8, min_size=32)
    assert len(crops) == 2
    assert sum((c.box[1] - c.box[0]) * (c.box[3] - c.box[2]) for c in crops) < 0.6 * 128 * 160
    assert active_boxes(torch.zeros(8, 8, dtype=torch.bool), 2, 4) == []


def test_level_of_depth_follows_the_pyramids_own_heights():
    """The level wanted at a depth comes from the heights the pyramid was rendered at: with the
    configured geometric heights it is log(d / d_0) / log(s); with other heights it interpolates
    in log-height between the two levels around h_0 * d / d_0."""
    depth = torch.tensor([0.5, 1.0, 1.2, 1.5, 2.0, 2.25, 3.0, 9.0])
    geometric = level_of_depth(depth, 1.0, [96, 144, 216])
    expected = (torch.log(depth) / math.log(1.5)).clamp(0.0, 2.0)
    assert torch.allclose(geometric, expected, atol=1e-6)
    # Level 2 rendered at 288 pixels: a depth of 2 d_0 wants 192 pixels, between 144 and 288.
    uneven = level_of_depth(torch.tensor([2.0, 3.0, 1.5]), 1.0, [96, 144, 288])
    assert torch.allclose(uneven, torch.tensor([1.0 + math.log(192 / 144) / math.log(2.0), 2.0, 1.0]), atol=1e-6)
    assert torch.all(level_of_depth(depth, 1.0, [96]) == 0.0)


@pytest.mark.parametrize("near_levels", [0, 1])
def test_near_levels_give_surfaces_nearer_than_the_reference_depth_a_coarser_level(near_levels):
    """The reference depth is seen at raster.image_height; with a near level below it, surfaces up
    to 1.5x nearer are seen coarser, so a pixel spans the same metres there too. Without one they
    all fall to image_height and their pixels (and strokes) shrink with their depth."""
    config = StylizeConfig()
    config.raster = RasterConfig(image_height=HEIGHT, levels=2, level_scale=1.5, near_levels=near_levels)
    heights = pyramid_heights(config)
    assert len(heights) == 2 + near_levels and heights[reference_level(config)] == HEIGHT
    pyramid, camera = tilted_plane_pyramid(config.raster, heights=heights)
    base = pyramid.levels[0]
    median = float(torch.quantile(base.depth[base.mask], 0.5))
    d0 = reference_depth([pyramid], config.loss, HEIGHT)
    assert d0 == pytest.approx(median * heights[0] / HEIGHT, rel=0.05)
    at_reference = level_of_depth(torch.tensor([median]), d0, heights)
    assert float(at_reference) == pytest.approx(reference_level(config), abs=0.06)
    # Metres per pixel at the (continuous) level each depth wants, for depths 1.5x nearer up to the median.
    depths = torch.linspace(median / 1.5, median, 9)
    height = heights[0] * 1.5 ** level_of_depth(depths, d0, heights)
    metres = depths / (camera.K[1, 1] * height / camera.height)
    spread = float(metres.max() / metres.min())
    if near_levels:
        assert spread < 1.02
    else:
        assert spread == pytest.approx(1.5, rel=0.02)


def test_near_levels_stop_at_the_height_vgg_still_has_relu5_features_at():
    """A 16-px --image-height (its lowest allowed) gets no near level: 11 px would leave relu5_1
    empty and the run would fail in VGG."""
    config = StylizeConfig()
    config.raster.image_height, config.raster.near_levels = 16, 2
    assert pyramid_heights(config)[0] == 16 and reference_level(config) == 0
    config.raster.image_height = 36   # 16 and 24 px below it: both kept
    heights = pyramid_heights(config)
    assert heights[:3] == [16, 24, 36] and reference_level(config) == 2
    assert min(heights) >= MIN_LEVEL_HEIGHT
