"""The README's quality figures are the benchmark's own output, not typed by hand."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "scripts" / "bench_quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def test_readme_carries_the_bench_markdown_verbatim():
    bench = bench_module()
    block = (ROOT / "docs" / "bench_quality.md").read_text()
    assert block.startswith(bench.MARKDOWN_BEGIN) and block.rstrip().endswith(bench.MARKDOWN_END)
    assert block.strip() in (ROOT / "README.md").read_text()


def test_bench_markdown_is_what_the_committed_bench_json_regenerates(tmp_path, capsys):
    """docs/bench/*.json hold every row the bench printed (its --json files, in table order); the
    markdown the README carries must be exactly what `--from-json` writes from them."""
    bench = bench_module()
    files = sorted((ROOT / "docs" / "bench").glob("*.json"))
    assert files, "no committed bench results"
    regenerated = tmp_path / "bench_quality.md"
    assert bench.main(["--from-json", *map(str, files), "--markdown", str(regenerated)]) == 0
    capsys.readouterr()
    assert regenerated.read_text() == (ROOT / "docs" / "bench_quality.md").read_text()


def test_bench_markdown_has_the_bench_columns_and_rows():
    bench = bench_module()
    lines = (ROOT / "docs" / "bench_quality.md").read_text().splitlines()
    header = "| " + " | ".join(bench.COLUMNS) + " |"
    assert header in lines
    rows = [line for line in lines[lines.index(header) + 2:] if line.startswith("| ")]
    assert rows, "no measured rows"
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == len(bench.COLUMNS)
        assert cells[0] in ("demo-room", "redkitchen") or cells[0]
        figures = dict(zip(bench.COLUMNS, cells))
        if cells[3] == "-":   # a run without its ceiling (--no-ceiling, --strengths): no ratios
            assert all(figures[column] == "nan" for column in ("ceiling_swd", "style_x", "ceiling_content",
                                                               "content_x"))
        else:
            mode, steps = cells[3].split("/")        # which 2-D ceiling, and its steps
            assert mode in ("patches", "flat") and (steps == "?" or int(steps) > 0)
        for value in cells[4:]:
            float(value)   # every figure is a number the bench printed


def test_bench_table_formats_rows_as_the_markdown_file_does(tmp_path):
    bench = bench_module()
    row = {column: 1.5 for column in bench.COLUMNS}
    row.update(scene="demo-room", style="starry_night", setting="defaults")
    text = bench.table([row], markdown=True)
    assert text.splitlines()[0] == "| " + " | ".join(bench.COLUMNS) + " |"
    assert text.splitlines()[2].startswith("| demo-room | starry_night | defaults | 1.5 |")


def test_seed_spread_summarises_only_rows_named_for_their_seed(tmp_path):
    bench = bench_module()
    base = {column: 1.0 for column in bench.COLUMNS}
    rows = [dict(base, scene="demo-room", style="great_wave", setting="gpu-s0", seed=0, style_x=1.2, content_x=0.9),
            dict(base, scene="demo-room", style="great_wave", setting="gpu-s1", seed=1, style_x=1.4, content_x=1.1),
            dict(base, scene="demo-room", style="great_wave", setting="gpu-s2", seed=2, style_x=1.3, content_x=0.95),
            # one-seed runs of a label are not a spread, nor rows without their seed in the name
            dict(base, scene="demo-room", style="great_wave", setting="other", seed=0, style_x=1.0, content_x=1.0),
            dict(base, scene="demo-room", style="great_wave", setting="cw01-s1", style_x=9.0, content_x=9.0),
            dict(base, scene="redkitchen", style="great_wave", setting="gpu-s0", seed=0, style_x=1.1, content_x=1.0)]
    notes = bench.seed_spread(rows)
    assert notes == ["demo-room x great_wave [gpu] over 3 seeds: style 1.20-1.40x (mean 1.30), "
                     "content 0.90-1.10x (mean 0.98); meets both bars at 1 of 3 seeds"]
    path = tmp_path / "bench.md"
    bench.write_markdown(path, rows, [], ["python scripts/bench_quality.py"])
    assert f"- {notes[0]}" in path.read_text().splitlines()


def test_several_seeds_run_every_row_once_per_seed_under_its_own_label(tmp_path, monkeypatch, capsys):
    bench = bench_module()
    calls = []

    def fake_bench_one(scene, style, label, overrides, args, with_ceiling=True, seed=0):
        calls.append((scene, style, label, seed))
        row = {column: 1.0 for column in bench.COLUMNS}
        row.update(scene=scene, style=style, setting=label, seed=seed, style_x=1.1 + seed / 10, content_x=0.9)
        return row

    monkeypatch.setattr(bench, "bench_one", fake_bench_one)   # the loop under test, not a stylize run
    assert bench.main(["--scenes", "demo-room", "--styles", "great_wave", "--seed", "0", "2",
                       "--json", str(tmp_path / "rows.json")]) == 0
    assert calls == [("demo-room", "great_wave", "defaults-s0", 0), ("demo-room", "great_wave", "defaults-s2", 2)]
    assert "[defaults] over 2 seeds: style 1.10-1.30x" in capsys.readouterr().out


def test_ceiling_key_follows_the_loss_but_not_what_the_ceiling_never_reads():
    from dataclasses import asdict

    from meshstyle.config import StylizeConfig
    from meshstyle.views.cameras import Camera, look_at

    bench = bench_module()
    camera = Camera(K=np.array([[40.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]]),
                    cam_to_world=look_at(np.zeros(3), np.array([0.0, 1.0, 0.0])), width=64, height=48)
    style, texture = np.zeros((8, 8, 3), np.float32), np.ones((16, 16, 3), np.float32)

    def key(**loss) -> str:
        config = asdict(StylizeConfig())
        config["loss"].update(loss)
        return bench.ceiling_key(config, style, camera, texture, 300, "patches", 2.0)

    # The ceiling's content and layout are always the mesh's colours: the run's targets do not matter.
    assert key() == key(content_target="photo") == key(layout_target="content")
    assert key() != key(layout_weight=2.0) and key() != key(content_weight=0.5)
    # The total-variation penalty acts on the texture, which the ceiling's pixels do not have.
    assert key() == key(tv_weight=3.0)
    # With the layout term off, keys cached before it existed still hit.
    legacy = asdict(StylizeConfig())
    for name in ("layout_weight", "layout_blur", "layout_target"):
        legacy["loss"].pop(name)
    assert key(layout_weight=0.0) == bench.ceiling_key(legacy, style, camera, texture, 300, "patches", 2.0)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A real, tiny run of demo-room with a held-out view and a depth pyramid of a near level and 2
    levels from --image-height up."""
    from reliability_tools import run_cli

    out = tmp_path_factory.mktemp("bench") / "run"
    done = run_cli("stylize", "demo-room", "--style", "strokes", "--iters", "2", "--views", "2", "--out", out,
                   "--texture-size", "128", "--image-height", "40", "--set", "cameras.holdout=1",
                   "--set", "raster.levels=2", "--set", "loss.style_size=64", "--set", "loss.style_scales=1.0",
                   timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_patch_ceiling_optimises_the_runs_own_loss(small_run):
    """The 2-D ceiling's objective is the 3-D run's: at the start image it equals the run's loss of
    that view on the start texture (up to resampling), and the ceiling lowers it."""
    from meshstyle.evaluate.rendering import Renderer
    from meshstyle.outputs.run_folder import load_result
    from meshstyle.pipeline import pyramid_heights
    from meshstyle.stylization.optimize import evaluate_views

    bench = bench_module()
    loaded = load_result(small_run)
    config = bench.config_of(loaded.run.config, small_run / "run.json")
    camera = loaded.holdout[0]
    start = torch.from_numpy(np.ascontiguousarray(loaded.original.texture, dtype=np.float32)).permute(2, 0, 1)
    depth_reference = loaded.run.info["reference_depth_m"]
    train, first, sizes = bench.patch_problem(Renderer(loaded.original).rasterizer, camera, config,
                                              depth_reference, start)
    assert [height for height, _width in sizes] == pyramid_heights(config) and sizes[1][0] == config.raster.image_height
    assert len({target.patch.level for target in train.targets}) >= 2, "the view should span several depth levels"
    objective = bench.ceiling_objective(loaded.style_image, config)
    in_3d = evaluate_views(start, [train], objective).total
    result, history = bench.stylize_2d_patches(first, train, sizes, objective, steps=25, lr=0.05, lr_decay=0.5)
    assert history[0] == pytest.approx(in_3d, rel=0.1)
    assert history[-1] < 0.6 * history[0]
    assert result.shape == first.shape and float(result.min()) >= 0.0 and float(result.max()) <= 1.0
