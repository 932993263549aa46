"""Cache hygiene: where the cache lives, a size budget per kind with least-recently-used pruning,
and `meshstyle cache info|clear`."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from meshstyle.common import cache
from meshstyle.cli import main


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MESHSTYLE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "meshstyle"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "meshstyle"
    monkeypatch.setenv("MESHSTYLE_CACHE", str(tmp_path / "own"))
    assert cache.cache_root() == tmp_path / "own"
    assert cache.cache_dir("atlas") == tmp_path / "own" / "atlas" and (tmp_path / "own" / "atlas").is_dir()


def test_pruning_keeps_the_budget_and_the_recently_used(tmp_path):
    folder = tmp_path / "fragments"
    folder.mkdir()
    now = time.time()
    for index in range(10):                                   # 10 entries of 100 kB, oldest first
        path = folder / f"{index}.npz"
        path.write_bytes(b"x" * 100_000)
        os.utime(path, (now - 100 + index, now - 100 + index))
    cache.touch(folder / "0.npz")                             # the oldest was just read again
    removed = cache.prune(folder, budget=0.5)                 # 0.5 MB: five entries fit
    left = sorted(path.name for path in folder.iterdir())
    assert removed == 5 and sum((folder / name).stat().st_size for name in left) <= 0.5 * 2**20
    assert "0.npz" in left and "1.npz" not in left and "9.npz" in left


def test_every_cache_stays_within_its_budget_in_a_real_render(monkeypatch, tmp_path):
    """The render cache (1 view = 4 bytes per pixel) with a budget of two views keeps two."""
    from meshstyle.views.cameras import orbit
    from meshstyle.outputs.render import ViewRenderer
    from meshstyle.geometry.scene import Scene, TexturedMesh

    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2)
    faces = np.asarray(sphere.faces)
    mesh = TexturedMesh(np.asarray(sphere.vertices), faces, np.zeros((len(faces), 3, 2), np.float32),
                        np.full((4, 4, 3), 0.5, np.float32))
    cameras = orbit(Scene("s", mesh.vertices, faces), 6, width=64, height=48)
    renderer = ViewRenderer(mesh, cache_dir=tmp_path)
    list(renderer.render(cameras))
    renderer.prune_cache(budget_mb=2.5 * 64 * 48 * 4 / 2**20)
    entries = list((tmp_path / "render").glob("*.npy"))
    assert len(entries) == 2


def test_cache_command_reports_and_clears(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MESHSTYLE_CACHE", str(tmp_path))
    for kind in cache.KINDS:
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "entry.npy").write_bytes(b"x" * 2048)
    assert main(["cache", "info"]) == 0
    shown = capsys.readouterr().out
    assert str(tmp_path) in shown and all(kind in shown for kind in cache.KINDS)
    assert main(["cache", "clear", "--kind", "render"]) == 0
    assert not list((tmp_path / "render").iterdir()) and list((tmp_path / "atlas").iterdir())
    assert main(["cache", "clear"]) == 0
    assert not any(list(Path(tmp_path, kind).iterdir()) for kind in cache.KINDS)
