"""Texture lookups: the OBJ UV convention, gradients, mip selection, and the Laplacian texture."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at
from meshstyle.raster.rasterizer import Rasterizer
from meshstyle.stylization.texture import (MIP_BIAS, LaplacianTexture, StepMips, mip_level, mip_pyramid, sample,
                                          uv_to_grid)

RED, GREEN, BLUE, YELLOW = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0)


def four_corner_texture(size: int = 8) -> torch.Tensor:
    """(3,size,size): image top-left red, top-right green, bottom-left blue, bottom-right yellow
    (row 0 is the top of the image, where OBJ's v = 1 lies)."""
    texture = torch.zeros(3, size, size)
    half = size // 2
    for (rows, cols), colour in (((slice(0, half), slice(0, half)), RED), ((slice(0, half), slice(half, size)), GREEN),
                                 ((slice(half, size), slice(0, half)), BLUE),
                                 ((slice(half, size), slice(half, size)), YELLOW)):
        texture[:, rows, cols] = torch.tensor(colour)[:, None, None]
    return texture


def quad(uv_scale: float = 1.0):
    """Square [0,1]^2 in the z = 0 plane with UV = xy * uv_scale."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    return Rasterizer(vertices, faces, (vertices[faces][..., :2] * uv_scale).astype(np.float32))


def look(eye, target, width: int, height: int, fov: float) -> Camera:
    return Camera(K=intrinsics_from_fov(width, height, fov),
                  cam_to_world=look_at(np.asarray(eye, float), np.asarray(target, float), np.array([0.0, 1.0, 0.0])),
                  width=width, height=height)


def test_uv_corners_land_where_obj_puts_them():
    texture = four_corner_texture()
    uv = torch.tensor([[[0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]])   # image layout: top row first
    colours = sample(texture, uv)
    expected = torch.tensor([[RED, GREEN], [BLUE, YELLOW]]).permute(2, 0, 1)
    torch.testing.assert_close(colours, expected)
    # The grid coordinate: u = 0 -> x = -1 (left edge), v = 0 -> y = +1 (bottom edge).
    torch.testing.assert_close(uv_to_grid(torch.tensor([[0.0, 0.0], [1.0, 1.0]])), torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))


def test_texel_centres_read_their_texel_exactly():
    """align_corners=False: texel (row i, column j) has its centre at u = (j+0.5)/W, v = 1 - (i+0.5)/H."""
    generator = torch.Generator().manual_seed(0)
    texture = torch.rand(3, 6, 10, generator=generator)
    rows, cols = torch.meshgrid(torch.arange(6), torch.arange(10), indexing="ij")
    uv = torch.stack([(cols + 0.5) / 10, 1 - (rows + 0.5) / 6], dim=-1)
    torch.testing.assert_close(sample(texture, uv), texture)


def test_rendered_quad_shows_the_corners_where_obj_puts_them():
    """Through the Rasterizer: world (0,0) has UV (0,0), so it must show the texture's bottom-left."""
    camera = look([0.5, 0.5, 0.8], [0.5, 0.5, 0.0], 64, 48, 50.0)   # image right = +x, image up = +y
    fragments = quad()(camera)
    assert fragments.mask.all()
    image = sample(four_corner_texture(), fragments.uv, fragments.footprint, fragments.mask)
    corners = {(0, 0): RED, (0, 63): GREEN, (47, 0): BLUE, (47, 63): YELLOW}
    for (row, col), colour in corners.items():
        torch.testing.assert_close(image[:, row, col], torch.tensor(colour), atol=1e-5, rtol=0)


def test_bilinear_gradients_reach_exactly_the_four_neighbours():
    generator = torch.Generator().manual_seed(1)
    height, width = 16, 20
    texture = torch.rand(3, height, width, generator=generator, requires_grad=True)
    uv = 0.1 + 0.8 * torch.rand(1, 7, 2, generator=generator)
    (sample(texture, uv) * torch.rand(3, 1, 7, generator=generator)).sum().backward()
    x = uv[0, :, 0] * width - 0.5           # texel-space position (align_corners=False)
    y = (1 - uv[0, :, 1]) * height - 0.5
    expected = torch.zeros(height, width, dtype=torch.bool)
    for column, row in zip(x.floor().long(), y.floor().long()):
        expected[row:row + 2, column:column + 2] = True
    assert torch.equal(texture.grad.abs().sum(0) > 0, expected)


def test_gradients_of_one_view_stay_on_the_texels_it_sees():
    rasterizer = quad()
    camera = look([0.3, 0.3, 0.5], [0.3, 0.3, 0.0], 48, 36, 30.0)    # sees UV ~[0.17, 0.43]^2 only
    fragments = rasterizer(camera)
    texture = torch.rand(3, 64, 64, requires_grad=True)
    image = sample(texture, fragments.uv, fragments.footprint, fragments.mask)
    (image * torch.rand_like(image)).sum().backward()
    touched = texture.grad.abs().sum(0) > 0

    level = torch.log2(fragments.footprint * 64).clamp_min(0)
    margin = 2 ** (int(level.max().ceil()) + 1)          # a texel block of the coarsest level read
    u, v = fragments.uv[..., 0] * 64, (1 - fragments.uv[..., 1]) * 64
    seen = torch.zeros(64, 64, dtype=torch.bool)
    seen[max(0, int(v.min()) - margin):int(v.max()) + margin + 1, max(0, int(u.min()) - margin):int(u.max()) + margin + 1] = True
    assert touched.any()
    assert not (touched & ~seen).any(), "gradient on texels the view never samples"
    inner = torch.zeros(64, 64, dtype=torch.bool)
    inner[int(v.min()) + 1:int(v.max()), int(u.min()) + 1:int(u.max())] = True
    assert touched[inner].float().mean() > 0.95, "the texels the view sees must get gradient"
    assert seen.float().mean() < 0.25


def test_mip_level_grows_with_depth_on_a_receding_plane():
    """A one-texel checkerboard averages to exactly 0.5 at every mip level >= 1: pixels reading
    level >= 1 are flat grey, the near ones (level < 1) still show the checker."""
    size = 256
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    checker = ((rows + cols) % 2).float().expand(3, size, size).contiguous()
    rasterizer = quad(uv_scale=0.25)      # the plane shows a quarter of the texture: fine enough up close
    # Low over the plane, looking along it: depth grows from the bottom of the image to the top.
    camera = look([0.5, -0.1, 0.12], [0.5, 1.0, 0.0], 96, 72, 40.0)
    fragments = rasterizer(camera)
    column = fragments.depth[:, 48]
    covered = fragments.mask[:, 48]
    depth, footprint = column[covered], fragments.footprint[:, 48][covered]
    order = torch.argsort(depth)
    assert (footprint[order].diff() >= -1e-7).all(), "footprint must grow with depth"
    assert footprint[order][-1] > 8 * footprint[order][0]

    image = sample(checker, fragments.uv, fragments.footprint, fragments.mask)[0]
    level = torch.log2(fragments.footprint * size) + MIP_BIAS   # the level read
    coarse = fragments.mask & (level >= 1.0)
    fine = fragments.mask & (level < -0.5)
    assert coarse.sum() > 100 and fine.sum() > 100
    torch.testing.assert_close(image[coarse], torch.full((int(coarse.sum()),), 0.5), atol=1e-5, rtol=0)
    assert image[fine].std() > 0.1          # bilinear reads of the checker: anything from 0 to 1
    assert fragments.depth[coarse].mean() > 1.5 * fragments.depth[fine].mean()
    # Without the footprint the far pixels alias: the checker survives there.
    assert sample(checker, fragments.uv, mask=fragments.mask)[0][coarse].std() > 0.1


def test_mip_level_of_numpy_and_torch_footprints_agree():
    footprint = np.array([0.0, 1e-6, 1 / 512, 1 / 256, 0.01, 0.3, 1.0, 50.0, np.inf, np.nan, -1.0], np.float32)
    expected = np.array([0, 0, 0, 0, np.log2(2.56) + MIP_BIAS, np.log2(76.8) + MIP_BIAS, 8 + MIP_BIAS, 8, 8, 0, 0],
                        np.float32)
    from_torch = mip_level(torch.from_numpy(footprint), 256, 9).numpy()
    from_numpy = mip_level(footprint.copy(), 256, 9)
    assert isinstance(from_numpy, np.ndarray)
    np.testing.assert_allclose(from_torch, expected, atol=1e-6)
    np.testing.assert_array_equal(from_numpy, from_torch)


def test_batched_views_match_single_views():
    generator = torch.Generator().manual_seed(2)
    texture = torch.rand(3, 32, 32, generator=generator)
    uv = torch.rand(3, 10, 12, 2, generator=generator)
    footprint = torch.rand(3, 10, 12, generator=generator) * 0.2
    mask = torch.rand(3, 10, 12, generator=generator) > 0.3
    batched = sample(texture, uv, footprint, mask)
    assert batched.shape == (3, 3, 10, 12)
    for index in range(3):
        torch.testing.assert_close(batched[index], sample(texture, uv[index], footprint[index], mask[index]))
    assert (batched.permute(1, 0, 2, 3)[:, ~mask] == 0).all()
    # A view that covers nothing is all zeros and still back-propagates (zero gradient).
    leaf = texture.clone().requires_grad_(True)
    empty = sample(leaf, uv[0], footprint[0], torch.zeros(10, 12, dtype=torch.bool))
    assert empty.shape == (3, 10, 12) and not empty.any()
    empty.sum().backward()
    assert not leaf.grad.any()


def test_step_mips_give_the_gradient_of_a_pyramid_per_crop():
    """Crops reading one shared pyramid, folded back after them, leave on the texture the gradient
    that each crop building its own pyramid leaves: same colours, same texels, same values."""
    generator = torch.Generator().manual_seed(4)
    texture = torch.rand(3, 64, 64, generator=generator)
    crops = [(torch.rand(9, 11, 2, generator=generator), torch.rand(9, 11, generator=generator) * 0.15,
              torch.rand(9, 11, generator=generator) > 0.2) for _ in range(3)]
    weights = [torch.rand(3, 9, 11, generator=generator) for _ in crops]

    own = texture.clone().requires_grad_(True)
    own_colours = [sample(own, uv, footprint, mask) for uv, footprint, mask in crops]
    sum((colours * weight).sum() for colours, weight in zip(own_colours, weights)).backward()

    shared = texture.clone().requires_grad_(True)
    mips = StepMips.of(shared)
    for (uv, footprint, mask), weight, expected in zip(crops, weights, own_colours):
        colours = sample(shared, uv, footprint, mask, pyramid=mips.levels)
        torch.testing.assert_close(colours, expected.detach())
        (colours * weight).sum().backward()
    assert any(level.grad is not None and level.grad.any() for level in mips.levels[1:])   # coarse levels were read
    mips.fold()
    assert all(level.grad is None for level in mips.levels[1:])
    torch.testing.assert_close(shared.grad, own.grad)


def test_mip_pyramid_filters_with_the_tent():
    """Each level is the previous one through [1,3,3,1]/8 per axis, halved: an impulse spreads
    over 4x4 texels of the finer level, a constant stays constant, odd sides round up."""
    impulse = torch.zeros(1, 8, 8)
    impulse[0, 3, 4] = 64.0
    half = mip_pyramid(impulse, 2)[1][0]
    tent = [1.0, 3.0, 3.0, 1.0]
    # Half-size texel i reads texels 2i-1 .. 2i+2 with the tent's weights, so texel 3 gets tap 4-2i.
    expected = torch.tensor([[tent[4 - 2 * i] * tent[5 - 2 * j] if 0 <= 4 - 2 * i < 4 and 0 <= 5 - 2 * j < 4 else 0.0
                              for j in range(4)] for i in range(4)])
    torch.testing.assert_close(half, expected)
    constant = torch.full((2, 6, 10), 0.3)
    assert all(torch.allclose(level, torch.full_like(level, 0.3)) for level in mip_pyramid(constant, 4))
    assert [tuple(level.shape) for level in mip_pyramid(torch.rand(2, 5, 3), 4)] == [(2, 5, 3), (2, 3, 2), (2, 2, 1),
                                                                                     (2, 1, 1)]


@pytest.mark.parametrize("shape", [(2, 6, 10), (1, 8, 2), (3, 5, 6)])
def test_mip_pyramid_gradient_is_exact(shape):
    """The even-sided tent has a backward written by hand: autograd's numerical check agrees."""
    image = torch.rand(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda texture: mip_pyramid(texture, 3)[-1], (image,))


def test_mip_gradients_fade_smoothly_over_the_texels():
    """A pixel reading level 2 sends its gradient over the texels as a smooth hill: with the 2x2
    box it was a flat 4x4 block with a hard edge, which the optimiser painted as a lattice."""
    texture = torch.rand(1, 64, 64, requires_grad=True)
    mip_pyramid(texture, 3)[2][0, 8, 8].backward()
    gradient = texture.grad[0]
    assert float(gradient.sum()) == pytest.approx(1.0, rel=1e-5)
    steps = max(float((gradient[1:] - gradient[:-1]).abs().max()), float((gradient[:, 1:] - gradient[:, :-1]).abs().max()))
    assert steps < 0.4 * float(gradient.max())   # the box: a jump of the whole value
    assert int((gradient > 0).sum()) == 10 * 10


@pytest.mark.parametrize("shape", [(3, 64, 64), (3, 100, 60)])
def test_laplacian_texture_sums_back_to_the_initial_texture(shape):
    initial = torch.rand(*shape, generator=torch.Generator().manual_seed(3))
    texture = LaplacianTexture(initial, levels=4)
    assert texture.levels == 4
    sizes = [tuple(layer.shape[-2:]) for layer in texture.layers]
    assert sizes[0] == shape[1:] and all(c[0] == (f[0] + 1) // 2 for f, c in zip(sizes, sizes[1:]))
    torch.testing.assert_close(texture(), initial, atol=1e-5, rtol=0)
    # The coarsest layer is the low-pass image; the finer ones are band-pass (near zero mean).
    torch.testing.assert_close(texture.layers[-1].detach(), mip_pyramid(initial, 4)[-1])
    assert all(abs(float(layer.detach().mean())) < 0.05 for layer in texture.layers[:-1])


def test_laplacian_texture_trains_clamps_and_regularises():
    initial = torch.full((3, 32, 32), 0.5)
    texture = LaplacianTexture(initial, levels=3)
    target = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(4))
    optimizer = torch.optim.Adam(texture.parameters(), lr=0.05)
    for _ in range(40):
        optimizer.zero_grad()
        ((texture() - target) ** 2).mean().backward()
        optimizer.step()
    assert ((texture() - target) ** 2).mean() < 0.01
    assert all(layer.grad is not None and layer.grad.abs().sum() > 0 for layer in texture.layers)

    with torch.no_grad():
        texture.layers[-1].add_(2.0)           # push everything out of range
    texture.clamp_()
    summed = texture().detach()
    assert summed.min() >= -1e-6 and summed.max() <= 1 + 1e-6

    expected = sum(w * layer.detach().pow(2).mean() for w, layer in zip([4.0, 2.0, 0.0], texture.layers))
    torch.testing.assert_close(texture.regularizer().detach(), expected)
    torch.testing.assert_close(texture.regularizer([0.0, 0.0, 1.0]).detach(), texture.layers[2].detach().pow(2).mean())
    with pytest.raises(ValueError):
        texture.regularizer([1.0] * 4)


def test_laplacian_texture_handles_4096_squared():
    initial = torch.rand(3, 4096, 4096, generator=torch.Generator().manual_seed(5))
    texture = LaplacianTexture(initial, levels=4)
    summed = texture()
    assert (summed - initial).abs().max() < 1e-5
    del initial
    summed.mean().backward()
    assert texture.layers[0].grad.shape == (3, 4096, 4096)
