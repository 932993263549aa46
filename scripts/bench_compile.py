"""VGG-19 forward+backward at 256x256 (2 threads), eager against torch.compile; prints both.

    .venv/bin/python scripts/bench_compile.py
"""
from __future__ import annotations

import time

import torch

from meshstyle.stylization.vgg import load_vgg

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def forward_backward(model, size: int) -> None:
    image = torch.rand(1, 3, size, size, requires_grad=True)
    features = model(image, LAYERS)
    sum(feature.pow(2).mean() for feature in features.values()).backward()


def seconds_per_call(model, size: int, repeats: int = 5) -> float:
    forward_backward(model, size)
    started = time.perf_counter()
    for _ in range(repeats):
        forward_backward(model, size)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    torch.set_num_threads(2)
    vgg = load_vgg()
    print(f"eager     {seconds_per_call(vgg, 256):.3f} s")
    started = time.perf_counter()
    compiled = torch.compile(vgg)
    forward_backward(compiled, 256)
    print(f"compiling {time.perf_counter() - started:.1f} s")
    print(f"compiled  {seconds_per_call(compiled, 256):.3f} s")


if __name__ == "__main__":
    main()
