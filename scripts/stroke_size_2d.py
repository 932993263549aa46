"""Is the stroke-size bias in the 3-D mapping or in the 2-D synthesis? (README, "Stroke size")

A plain 2-D Gram synthesis of the `circles` style at the pixel scale of tests/test_stroke_size.py's
middle distance (a 144x192 image, style SIDE px wide, so a disc is SIDE/20 px), measured with eval's
circle measure on a fronto-parallel plane 1.5 m away seen 480 px high, as eval sees the 3-D views.

    STAT=gram .venv/bin/python scripts/stroke_size_2d.py SIDE STEPS LR [LAYERS] [SEED]
    .venv/bin/python scripts/stroke_size_2d.py 166 400 0.05      # extent 2 m, 400 steps
"""
import os
import sys
import tempfile
import time

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

from meshstyle.config import LossConfig
from meshstyle.evaluate.circles import find_circles, red_mask
from meshstyle.evaluate.rendering import RenderedView
from meshstyle.geometry.camera import Camera, intrinsics_from_fov, look_at
from meshstyle.inputs.styles import load_style
from meshstyle.raster.fragments import Fragments
from meshstyle.stylization.losses import style_targets
from meshstyle.stylization.optimize import Objective, image_loss
from meshstyle.stylization.vgg import load_vgg

STAT = os.environ.get("STAT", "gram")
DEPTH = 1.5
H, W = 144, 192

def plane_view(image_small):
    """The (h,w,3) image seen on a fronto-parallel plane at DEPTH, enlarged to 480 px as eval does."""
    h480, w480 = 480, 640
    img = torch.from_numpy(image_small).permute(2, 0, 1)[None]
    big = F.interpolate(img, size=(h480, w480), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    K = intrinsics_from_fov(w480, h480, 60.0)
    cam = Camera(K=K, cam_to_world=look_at(np.array([0, -DEPTH, 0.]), np.array([0, 0, 0.])), width=w480, height=h480)
    frag = Fragments(uv=torch.zeros(h480, w480, 2), face_id=torch.zeros(h480, w480, dtype=torch.int64),
                     bary=torch.zeros(h480, w480, 3), depth=torch.full((h480, w480), DEPTH),
                     normal=torch.tensor([0, -1., 0]).expand(h480, w480, 3).contiguous(),
                     cos_angle=torch.ones(h480, w480), footprint=torch.ones(h480, w480),
                     mask=torch.ones(h480, w480, dtype=torch.bool))
    return RenderedView(camera=cam, fragments=frag, image=big)

def measure(image_small, label):
    circles = find_circles(plane_view(image_small))
    r = np.array([c.radius_m for c in circles])
    mask = red_mask(image_small)
    print(f"{label}: {len(r)} discs, median r {np.median(r) if len(r) else float('nan'):.4f} m "
          f"(wanted {extent/20:.4f}), ratio {np.median(r)/(extent/20) if len(r) else float('nan'):.3f}; "
          f"red share {mask.mean():.3f}; quartiles {np.percentile(r,[10,25,75,90]).round(3) if len(r) else ''}", flush=True)
    return r

side = int(sys.argv[1]) if len(sys.argv) > 1 else 166
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
layers = tuple(sys.argv[4].split(",")) if len(sys.argv) > 4 else ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
f1 = 0.5 * H / np.tan(np.radians(30))
extent = side * DEPTH / f1
print(f"side {side} px, focal {f1:.1f}, extent {extent:.3f} m, disc r {side/20:.2f} px; steps {steps} lr {lr} layers {layers}")
torch.manual_seed(seed)
style = load_style("circles", side)
tiled = np.tile(style, (2, 2, 1))[:H, :W]
measure(tiled, "style itself tiled")
vgg = load_vgg()
loss = LossConfig(statistic=STAT, style_only=True, style_scales=(1.0,), style_layers=layers, style_layer_weights=(1.0,) * len(layers))
targets = style_targets(vgg, torch.from_numpy(style).permute(2, 0, 1).contiguous(), layers, (1.0,), STAT)
obj = Objective(vgg=vgg, style=targets, loss=loss)
mean = torch.from_numpy(style.reshape(-1, 3).mean(0))
pixels = (mean[:, None, None] + 0.02 * torch.randn(3, H, W)).clamp(0, 1).requires_grad_(True)
opt = torch.optim.Adam([pixels], lr=lr)
weight = torch.ones(1, 1, H, W)
t = time.time()
for step in range(steps):
    for g in opt.param_groups:
        g["lr"] = lr * 0.1 ** (step / max(1, steps - 1))
    s, _ = image_loss(pixels, weight, obj, None, None, key=step)
    opt.zero_grad(); s.backward(); opt.step()
    with torch.no_grad():
        pixels.clamp_(0, 1)
    if step % 50 == 0 or step == steps - 1:
        print(f"step {step} loss {float(s):.4f} ({time.time()-t:.0f}s)", flush=True)
        if step and (step % 100 == 0 or step == steps - 1):
            measure(pixels.detach().permute(1, 2, 0).numpy(), f"  2-D synthesis at step {step}")
out = pixels.detach().permute(1, 2, 0).numpy()
path = f"{tempfile.gettempdir()}/stroke_size_2d_{STAT}_{side}_{steps}_{seed}.png"
print("wrote", path)
iio.imwrite(path, (out * 255).astype(np.uint8))
