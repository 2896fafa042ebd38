"""What every CLI entry point sets up first: device, thread count, the process group under torchrun, the run dir."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from .._validation import is_int
from ..distributed import broadcast_from_main, init_from_env, launch_env


def config_dir() -> Path:
    """The config tree, ``scoresde/conf``: package data of the wheel, and the same folder in a checkout (the
    repository's top-level ``conf`` is a link to it), so edits there take effect at once in an editable install."""
    return Path(__file__).resolve().parents[1] / "conf"


CONF_DIR = str(config_dir())
"""hydra's config_path for every entry point (see :func:`config_dir`)."""

log = logging.getLogger("scoresde")


@dataclass
class Runtime:
    """Where and how this process runs."""

    device: torch.device
    rank: int
    world_size: int
    local_rank: int
    threads: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def available_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``), never the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec not in ("cpu", "cuda") and not spec.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={spec!r} but CUDA is not available; use device=cpu")
    if spec == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(spec)


def setup_runtime(device: str = "auto", threads: int | None = None) -> Runtime:
    """Pick the device, set torch's thread count and join the process group when launched by torchrun or SLURM.

    Threads: ``threads`` (an integer >= 1) if given, else (None) the available cores (``os.sched_getaffinity``)
    divided by the processes on this node; never more than that share, and at least 1.
    """
    env = launch_env()  # torchrun (one node or several) or SLURM (srun / submitit tasks); refuses inconsistent ranks
    world, rank, local_rank, local_world = env.world_size, env.rank, env.local_rank, env.local_world_size
    dev = resolve_device(device, local_rank)
    if threads is not None and (not is_int(threads) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 or null (all cores in sched_getaffinity), got {threads!r}")
    share = max(1, available_cores() // max(local_world, 1))  # never more threads than our cores
    n_threads = share if threads is None else min(threads, share)
    torch.set_num_threads(n_threads)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1:
        init_from_env(str(dev), env)
    return Runtime(device=dev, rank=rank, world_size=world, local_rank=local_rank, threads=n_threads)


def shared_run_dir(own: Path, runtime: Runtime) -> Path:
    """Rank 0's hydra run directory on every rank; a rank whose own hydra directory differs removes it.

    Under torchrun every process starts hydra, and their timestamped directories may differ by a second.
    """
    if runtime.world_size == 1:
        return own
    shared = Path(broadcast_from_main(str(own)))
    if shared != own and own.exists() and {p.name for p in own.iterdir()} <= {".hydra", "train.log", "sample.log"}:
        shutil.rmtree(own)
    return shared


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without its ``hydra`` node, as plain dicts/lists/scalars (what checkpoints store)."""
    plain: dict[str, Any] = {}
    for key in cfg:
        if key == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            plain[key] = "???"
            continue
        value = cfg[key]
        plain[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return plain


def debugging() -> bool:
    """``SCORESDE_DEBUG=1`` (or hydra's ``HYDRA_FULL_ERROR=1``): CLI errors show their traceback."""
    return any(os.environ.get(var, "") not in ("", "0") for var in ("SCORESDE_DEBUG", "HYDRA_FULL_ERROR"))


class SettingError(ValueError):
    """A setting that can be checked only once the checkpoint or the data are loaded; the CLI exits 2 on it, as the
    preflight does on the settings it can check before anything is loaded."""


HYDRA_FILES = {".hydra", "train.log", "sample.log", "likelihood.log", "train_noisy_classifier.log"}
"""What hydra itself writes into a run directory before the task starts."""


def _close_log_files(run_dir: Path) -> None:
    """Close the logging file handlers writing into ``run_dir`` (hydra's job log) before it is removed."""
    for handler in logging.getLogger().handlers[:]:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).is_relative_to(run_dir.resolve()):
            handler.close()
            logging.getLogger().removeHandler(handler)


def _hydra_job() -> tuple[set[str], Path | None]:
    """The files hydra writes into a job's directory (its job log is ``<job name>.log``), and the sweep directory
    of a multirun (None for a single run or outside hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set(HYDRA_FILES), None
    hc = HydraConfig.get()
    sweep = Path(hc.sweep.dir).absolute() if hc.mode.name == "MULTIRUN" else None
    return HYDRA_FILES | {f"{hc.job.name}.log"}, sweep


def _remove_if_empty(run_dir: Path | None, fresh: bool) -> bool:
    """Remove a run directory this command created that holds nothing but hydra's files; whether it did.

    In a multirun, the sweep directory goes too when nothing is left in it but hydra's ``multirun.yaml``.
    """
    if not fresh or run_dir is None or not run_dir.is_dir():
        return False
    hydra_files, sweep = _hydra_job()
    if not {p.name for p in run_dir.iterdir()} <= hydra_files:
        return False
    _close_log_files(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    if sweep is not None and sweep.is_dir() and {p.name for p in sweep.iterdir()} <= {"multirun.yaml"}:
        shutil.rmtree(sweep, ignore_errors=True)
    return True


@contextmanager
def exit_on_error(run_dir: Path | None = None, *, fresh: bool = False, status: int = 1) -> Iterator[None]:
    """Turn an exception into ``error: <message>`` on stderr and exit ``status`` (the traceback when debugging).

    Ctrl-C (KeyboardInterrupt, whose message says what was saved) prints ``interrupted: <message>`` and exits 130;
    a :class:`SettingError` exits 2 whatever ``status`` says.

    Args:
        run_dir: The run directory; with ``fresh``, removed when it holds nothing but hydra's own files, so that a
            command that failed before its first result leaves no directory behind.
        fresh: Whether ``run_dir`` may be removed when it holds nothing but hydra's files (a resumed run's
            directory holds checkpoints, so it is never removed).
        status: The exit status.
    """
    try:
        yield
    except KeyboardInterrupt as err:  # Ctrl-C or kill: what was saved, and how to go on, in one line
        _remove_if_empty(run_dir, fresh)
        if debugging():
            traceback.print_exc()
        message = str(err) or ("nothing was written" if run_dir is None or not run_dir.is_dir() else f"see {run_dir}")
        if run_dir is not None and run_dir.is_dir():
            log.warning("interrupted: %s", message)
        print(f"interrupted: {message}", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        message = str(err) or type(err).__name__
        if not _remove_if_empty(run_dir, fresh) and run_dir is not None:
            log.error("%s", message)  # the run directory stays (checkpoints, metrics): its log says why it stopped
        if isinstance(err, SettingError):
            status = 2
        if debugging():
            traceback.print_exc()  # printed here: hydra turns an exception raised in a callback into a warning
            sys.exit(status)
        print(f"error: {message}", file=sys.stderr)
        if not isinstance(err, (ValueError, TypeError, OSError)):  # OSError: a file error, its message names it
            print(f"({type(err).__name__}; SCORESDE_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(status)


def finish(runtime: Runtime) -> None:
    """Leave the process group (all ranks wait for each other first)."""
    if runtime.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_command(cfg: DictConfig, body: Callable[[DictConfig, Path, torch.device], Any]) -> None:
    """What a command's hydra main does: set up the runtime, run ``body(cfg, run_dir, device)`` on rank 0's run
    directory and leave the process group, inside :func:`exit_on_error` (a run directory that holds nothing but
    hydra's files afterwards is removed). The settings were checked by the preflight (``_preflight.py``)."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with exit_on_error(run_dir, fresh=True):
        runtime = setup_runtime(cfg.device, cfg.threads)
        body(cfg, shared_run_dir(run_dir, runtime), runtime.device)
        finish(runtime)
