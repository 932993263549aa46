"""The README's quality figures are the benchmark's own output, not typed by hand."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
        for value in cells[3:]:
            float(value)   # every figure is a number the bench printed


def test_bench_table_formats_rows_as_the_markdown_file_does(tmp_path):
    bench = bench_module()
    row = {column: 1.5 for column in bench.COLUMNS}
    row.update(scene="demo-room", style="starry_night", setting="defaults")
    text = bench.table([row], markdown=True)
    assert text.splitlines()[0] == "| " + " | ".join(bench.COLUMNS) + " |"
    assert text.splitlines()[2].startswith("| demo-room | starry_night | defaults | 1.5 |")
