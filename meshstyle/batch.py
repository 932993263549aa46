"""`meshstyle batch JOBS.toml`: every scene x style pair as its own run folder OUT/<scene>__<style>/.

The jobs file (paths and globs are relative to the jobs file's folder)::

    out = "runs"                            # where the run folders go (default "runs")
    scenes = ["demo-object", "scans/*"]     # mesh files, scan folders, globs or built-in scene names
    styles = ["circles", "styles/*.jpg"]    # image files, globs or built-in style names
    config = "base.toml"                    # optional: a config file for every job, as with --config
    eval = true                             # optional: `meshstyle eval` each run (scores in the table)
    [set]                                   # config keys for every job, as with --set
    "optim.iters" = 100

A job's name is its scene's (file stem, folder name or built-in name) and its style's, joined by
two underscores. A folder with run.json is a finished job and is skipped; one with checkpoint.pt
but no run.json was interrupted and is resumed; anything else starts afresh. The whole file is
checked before any job runs, so a typo stops the batch at once (exit 2).

Under torchrun the jobs are dealt out over the ranks (rank r runs jobs r, r+N, r+2N, ...), each as
an ordinary one-process run on the rank's own device, and rank 0 prints one table for all.
"""
from __future__ import annotations

import copy
import glob
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshstyle.config import StylizeConfig, build_config, flatten, load_toml, set_key
from meshstyle.errors import InputError, MeshstyleError
from meshstyle.common.progress import log, warn

if TYPE_CHECKING:   # torch: imported where used, so a bad jobs file is refused before it loads
    from meshstyle.common import distributed

KNOWN_KEYS = {"out", "scenes", "styles", "config", "eval", "set"}
GLOB_CHARS = set("*?[")
# A rank that finishes its share early waits for the others at the final gather; jobs may run
# for days on a big dataset.
BATCH_TIMEOUT_S = 30 * 24 * 3600.0


@dataclass
class Job:
    name: str            # <scene>__<style>
    scene: str           # a path or a built-in scene name
    style: str           # a path or a built-in style name
    out: Path


@dataclass
class JobsFile:
    path: Path
    out: Path
    jobs: list[Job]
    config: StylizeConfig
    evaluate: bool = False


@dataclass
class Outcome:
    """One job's row of the summary table."""
    name: str
    rank: int
    status: str                  # done | resumed | skipped | failed
    seconds: float = 0.0         # the run's own time (stage timings), from run.json
    steps: int = 0
    loss: float | None = None
    style: float | None = None
    content: float | None = None
    holdout_style: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""


def load_jobs(path: str | Path) -> JobsFile:
    """Read and check a jobs file: every scene and style exists, names are distinct, config keys valid."""
    path = Path(path)
    values = load_toml(path)
    unknown = sorted(set(values) - KNOWN_KEYS)
    if unknown:
        raise InputError(path, f"unknown key {', '.join(unknown)} (known: {', '.join(sorted(KNOWN_KEYS))})")
    base = path.parent
    config_file = values.get("config")
    config = build_config(_under(base, config_file) if config_file else None)
    overrides = values.get("set", {})
    if not isinstance(overrides, dict):
        raise InputError(path, "[set] must be a table of config keys")
    for key, value in flatten(overrides).items():
        set_key(config, key, value, f"{path} [set]")
    evaluate = values.get("eval", False)
    if not isinstance(evaluate, bool):
        raise InputError(path, "eval must be true or false")
    out = _under(base, values.get("out", "runs"))
    scenes = _expand(path, base, values.get("scenes"), "scenes", _builtin_scenes())
    styles = _expand(path, base, values.get("styles"), "styles", _builtin_styles())
    jobs: list[Job] = []
    seen: dict[str, tuple[str, str]] = {}
    for scene_name, scene in scenes:
        for style_name, style in styles:
            name = f"{scene_name}__{style_name}"
            if name in seen:
                raise InputError(path, f"two jobs would share the folder {name}: "
                                       f"{seen[name][0]} x {seen[name][1]} and {scene} x {style}")
            seen[name] = (scene, style)
            jobs.append(Job(name=name, scene=scene, style=style, out=out / name))
    return JobsFile(path=path, out=out, jobs=jobs, config=config, evaluate=evaluate)


def _under(base: Path, value: Any) -> Path:
    candidate = Path(str(value)).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def _builtin_scenes() -> set[str]:
    from meshstyle import scenes   # installed as meshstyle.scenes: a bare `import scenes` works only in the repository

    return set(scenes.SCENES)


def _builtin_styles() -> set[str]:
    from meshstyle.inputs.styles import STYLES

    return set(STYLES)


def _expand(path: Path, base: Path, entries: Any, key: str, builtins: set[str]) -> list[tuple[str, str]]:
    """(name, spec) for every entry: a built-in name, an existing path, or a glob's sorted matches."""
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not entries or not all(isinstance(item, str) for item in entries):
        raise InputError(path, f"'{key}' must be a non-empty list of paths, globs or built-in names")
    found: list[tuple[str, str]] = []
    for entry in entries:
        if entry in builtins and not _under(base, entry).exists():
            found.append((entry, entry))
            continue
        if GLOB_CHARS & set(entry):
            matches = sorted(glob.glob(str(_under(base, entry))))
            if not matches:
                raise InputError(path, f"{key}: '{entry}' matches nothing")
            found.extend((_stem(match), match) for match in matches)
            continue
        target = _under(base, entry)
        if not target.exists():
            raise InputError(path, f"{key}: '{entry}' is neither a file or folder nor a built-in name "
                                   f"({', '.join(sorted(builtins))})")
        found.append((_stem(str(target)), str(target)))
    return found


def _stem(spec: str) -> str:
    path = Path(spec.rstrip("/"))
    return path.name if path.is_dir() else path.stem


# --- running ----------------------------------------------------------------------------------

def share_atlases(jobs_file: JobsFile, world: distributed.World) -> None:
    """Unwrap every scene of unfinished jobs once, on one rank, and put it in every rank's cache.

    Jobs of one scene run on different ranks at the same time; each would unwrap it, and uvatlas (used
    where xatlas is missing) is not deterministic: the styles of one scene would get different
    atlases, and a job resumed later could read a cache entry that another rank overwrote. Atlases
    travel over the process group, so this needs no filesystem shared between machines."""
    from meshstyle.common import distributed
    from meshstyle.atlas.unwrap import make_atlas, remember_atlas
    from meshstyle.inputs.load import load_scene
    from meshstyle.atlas.texture_size import pack_size

    if not world.enabled:
        return
    pending = sorted({job.scene for job in jobs_file.jobs if not (job.out / "run.json").is_file()})
    config = jobs_file.config
    made = []
    for index, spec in enumerate(pending):
        if index % world.size != world.rank:
            continue
        try:
            with distributed.local_only():
                scene = load_scene(spec, config.scene)
                size = pack_size(scene, config.texture.size, config.texture.texels_per_metre, config.texture.max_size)
                made.append((spec, size, make_atlas(scene, size, config.scene)))
        except MeshstyleError:
            continue   # the job itself reports it in the table
    for part in distributed.gather_objects(world, made):
        for spec, size, atlas in part:
            if not any(mine == spec for mine, _, _ in made):
                remember_atlas(load_scene(spec, config.scene), size, atlas)


def run_batch(jobs_file: JobsFile, world: distributed.World) -> list[Outcome]:
    """Run this rank's share of the jobs; every rank returns all ranks' outcomes, in job order."""
    from meshstyle.common import distributed

    share_atlases(jobs_file, world)
    mine = [(index, job) for index, job in enumerate(jobs_file.jobs) if index % world.size == world.rank]
    outcomes = []
    for index, job in mine:
        outcomes.append((index, run_job(job, jobs_file, world.rank)))
    gathered = distributed.gather_objects(world, [(index, asdict(outcome)) for index, outcome in outcomes])
    rows = sorted((item for part in gathered for item in part), key=lambda pair: pair[0])
    return [Outcome(**row) for _, row in rows]


def run_job(job: Job, jobs_file: JobsFile, rank: int) -> Outcome:
    """One scene x style run into its folder: skipped when finished, resumed when interrupted."""
    from meshstyle.common import distributed
    from meshstyle.inputs.load import load_scene
    from meshstyle.pipeline import stylize
    from meshstyle.outputs.run_folder import evaluate_run

    if (job.out / "run.json").is_file():
        return _from_run(job, rank, "skipped")
    resume = (job.out / "checkpoint.pt").is_file()
    log(f"batch: {job.name} ({'resuming' if resume else 'starting'})")
    config = copy.deepcopy(jobs_file.config)   # a fresh copy per job
    try:
        with distributed.local_only():
            scene = load_scene(job.scene, config.scene)
            result = stylize(scene, job.style, config, out_dir=job.out, resume=resume)
            result.save(job.out, overwrite=True)
            if jobs_file.evaluate:
                evaluate_run(job.out)
    except MeshstyleError as error:
        warn(f"batch: {job.name} failed: {error}")
        return Outcome(name=job.name, rank=rank, status="failed", error=str(error))
    except KeyboardInterrupt:
        raise
    except Exception as error:  # one broken job must not cost the others
        warn(f"batch: {job.name} failed: internal error: {type(error).__name__}: {error}")
        return Outcome(name=job.name, rank=rank, status="failed", error=f"{type(error).__name__}: {error}")
    return _from_run(job, rank, "resumed" if resume else "done")


def _from_run(job: Job, rank: int, status: str) -> Outcome:
    """The summary figures of a finished run folder, read back from its run.json."""
    import json

    from meshstyle.evaluate.metrics import flatten_metrics

    try:
        run = json.loads((job.out / "run.json").read_text())
    except (OSError, ValueError) as exc:
        return Outcome(name=job.name, rank=rank, status="failed", error=f"unreadable run.json ({exc})")
    history = run.get("history") or [{}]
    last = history[-1]
    holdout = (run.get("info") or {}).get("holdout_style_loss") or {}
    metrics = flatten_metrics(run.get("metrics") or {})
    return Outcome(name=job.name, rank=rank, status=status,
                   seconds=float(sum((run.get("timings") or {}).values())), steps=len(run.get("history") or []),
                   loss=last.get("total"), style=last.get("style"), content=last.get("content"),
                   holdout_style=holdout.get("final"), metrics=metrics)


# Eval scores shown in the table when the runs were evaluated (all of them stay in run.json).
TABLE_METRICS = ("style.swd", "content.ssim", "seams.ratio")


def format_summary(outcomes: list[Outcome]) -> str:
    """One table: a row per job with its status, time, losses and eval scores."""
    shown = [key for key in TABLE_METRICS if any(key in outcome.metrics for outcome in outcomes)]
    header = ["job", "rank", "status", "time s", "steps", "loss", "style", "content", "holdout style", *shown]
    rows = []
    for outcome in outcomes:
        figures = [outcome.loss, outcome.style, outcome.content, outcome.holdout_style,
                   *(outcome.metrics.get(key) for key in shown)]
        rows.append([outcome.name, str(outcome.rank), outcome.status,
                     f"{outcome.seconds:.1f}" if outcome.status != "failed" else "-",
                     str(outcome.steps) if outcome.status != "failed" else "-",
                     *("-" if value is None else f"{value:.4g}" for value in figures)])
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for outcome in outcomes:
        if outcome.error:
            lines.append(f"{outcome.name}: {outcome.error}")
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "resumed", "skipped", "failed")}
    lines.append(", ".join(f"{count} {status}" for status, count in counts.items() if count) or "no jobs")
    return "\n".join(lines)


def main(path: str | Path) -> int:
    """The `batch` command: 0 when every job finished (now or before), 1 when any failed."""
    from meshstyle.common import distributed
    from meshstyle.common.io import write_json

    world = distributed.world("cpu", timeout_s=BATCH_TIMEOUT_S)
    jobs_file = distributed.run_on_main(world, lambda: load_jobs(path), share_result=False)
    jobs_file = jobs_file if world.is_main else load_jobs(path)
    device = jobs_file.config.device
    if device.startswith("cuda") and world.enabled:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(world.local_rank % torch.cuda.device_count())
    started = time.perf_counter()
    outcomes = run_batch(jobs_file, world)
    if world.is_main:
        print(format_summary(outcomes))
        write_json(jobs_file.out / "batch.json", {
            "jobs_file": str(jobs_file.path), "ranks": world.size,
            "seconds": round(time.perf_counter() - started, 3), "jobs": [asdict(o) for o in outcomes]})
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0
