"""Sampling and evaluation spread over processes (``torchrun --nproc_per_node=N``) with process-independent results.

Work is cut into chunks of a fixed size (``batch_size`` samples or test examples), dealt round-robin to the ranks
(:func:`shard`); rank 0 gathers the chunks in index order (:func:`gather_to_main`), the other ranks get None.
Without an initialised process group everything runs in this process (rank 0 of 1).

A sample is a function of (seed, index) alone (:func:`sample_sharded`): its prior draw x_T and every noise draw of
the solver are keyed by its index in the whole run (:class:`~scoresde.solvers.noise.KeyedNoise`), so
the number of processes, the batch size and the position in a batch do not change it, and one process reproduces
any single sample of a large run. Other per-chunk randomness (the likelihood's Hutchinson probes) comes from a
generator seeded by (seed, chunk) (:func:`chunk_seed`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from ._validation import check_int
from .sampling import sample
from .sde import SDE, ScoreFn
from .solvers.noise import KeyedNoise, hash_words, keyed_normal


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the processes: rank in [0, world_size)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def process_group() -> ProcessGroup:
    """The default process group's rank and size, or (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return ProcessGroup(dist.get_rank(), dist.get_world_size())
    return ProcessGroup()


@dataclass(frozen=True)
class LaunchEnv:
    """Where the launcher put this process: global rank and size, rank and size on its node, and who started it.

    Attributes:
        rank: Global rank in [0, world_size).
        world_size: Number of processes over all nodes.
        local_rank: Rank on this node in [0, local_world_size) (picks the GPU).
        local_world_size: Processes on this node.
        launcher: ``"torchrun"``, ``"slurm"`` or ``"single"``.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    launcher: str = "single"


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    if name not in env:
        return None
    try:
        return int(env[name])
    except ValueError:
        raise ValueError(f"environment variable {name}={env[name]!r} is not an integer") from None


def _slurm_tasks_on_node(env: Mapping[str, str], world: int) -> int:
    """SLURM_NTASKS_PER_NODE, else the first count of SLURM_TASKS_PER_NODE (e.g. ``"2(x3)"``), else the world."""
    if "SLURM_NTASKS_PER_NODE" in env:
        return _env_int(env, "SLURM_NTASKS_PER_NODE")
    spec = env.get("SLURM_TASKS_PER_NODE", "")
    head = spec.split(",")[0].split("(")[0]
    return int(head) if head.isdigit() else world


def launch_env(env: Mapping[str, str] | None = None) -> LaunchEnv:
    """Read the launcher's environment: torchrun's (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, any number of
    nodes), else SLURM's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID with srun or hydra's submitit launcher, one
    task per process), else a single process.

    A SLURM job of several tasks also needs MASTER_ADDR and MASTER_PORT (the address of the rank-0 node and a free
    port; docs/guides/training.md shows them set in the batch script); :func:`init_from_env` refuses to start
    without them. Inconsistent values (a rank outside [0, world_size), a local rank outside the node's tasks) raise
    ValueError naming the variables before any process group is joined.
    """
    env = os.environ if env is None else env
    if "RANK" in env or "WORLD_SIZE" in env:
        world, rank = _env_int(env, "WORLD_SIZE") or 1, _env_int(env, "RANK") or 0
        local = _env_int(env, "LOCAL_RANK") or 0
        local_world = _env_int(env, "LOCAL_WORLD_SIZE") or world
        names, launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"), "torchrun"
    elif "SLURM_NTASKS" in env and _env_int(env, "SLURM_NTASKS") > 1:
        world, rank = _env_int(env, "SLURM_NTASKS"), _env_int(env, "SLURM_PROCID")
        if rank is None:
            raise ValueError("SLURM_NTASKS > 1 but SLURM_PROCID is unset: start the tasks with srun (or submitit)")
        local = _env_int(env, "SLURM_LOCALID") or 0
        local_world = _slurm_tasks_on_node(env, world)
        names, launcher = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"), "slurm"
    else:
        return LaunchEnv()
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent ranks: {names[0]}={rank} must lie in [0, {names[1]}={world})")
    if local_world < 1 or not 0 <= local < local_world or local_world > world:
        raise ValueError(f"inconsistent ranks: {names[2]}={local} must lie in [0, {names[3]}={local_world}) and "
                         f"{names[3]} <= {names[1]}={world}")  # fmt: skip
    return LaunchEnv(rank, world, local, local_world, launcher)


def init_from_env(device: str = "cpu", env: LaunchEnv | None = None) -> ProcessGroup:
    """Join the default process group when launched by torchrun or SLURM with several processes: nccl for CUDA,
    else gloo (any number of nodes; torchrun's rendezvous or MASTER_ADDR / MASTER_PORT for SLURM).

    A script that is not one of the CLIs (those call ``scoresde.cli._runtime.setup_runtime``) calls this first.
    """
    env = env or launch_env()
    if env.world_size > 1 and not dist.is_initialized():
        if env.launcher == "slurm":
            missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
            if missing:
                raise ValueError(f"a SLURM job of {env.world_size} tasks needs {' and '.join(missing)} (the rank-0 "
                                 "node's address and a free port), e.g. MASTER_ADDR=$(scontrol show hostnames "
                                 "$SLURM_JOB_NODELIST | head -n 1) MASTER_PORT=29500")  # fmt: skip
        cuda = str(device).startswith("cuda")
        if cuda:
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://", rank=env.rank,
                                world_size=env.world_size)  # fmt: skip
    return process_group()


def local_device(device: str) -> str:
    """``"cuda"`` -> ``"cuda:<local rank>"`` (one GPU per process under torchrun or SLURM); others unchanged."""
    return f"cuda:{launch_env().local_rank}" if device == "cuda" else device


def broadcast_from_main(obj: Any, group: ProcessGroup | None = None) -> Any:
    """Rank 0's ``obj`` on every rank (a decision all ranks must share, e.g. whether to skip a job)."""
    group = group or process_group()
    if group.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def num_chunks(n: int, chunk_size: int) -> int:
    """How many chunks of ``chunk_size`` cover n items (the last one may be shorter)."""
    return -(-check_int("n", n) // check_int("chunk_size", chunk_size))


def chunk_range(k: int, n: int, chunk_size: int) -> range:
    """The item indices of chunk k."""
    return range(k * chunk_size, min((k + 1) * chunk_size, n))


def shard(items: Sequence[Any], group: ProcessGroup) -> list[Any]:
    """This rank's items, dealt round-robin: items[rank], items[rank + world_size], ..."""
    return list(items[group.rank :: group.world_size])


def chunk_seed(seed: int, chunk: int) -> int:
    """A 63-bit seed for chunk ``chunk`` of a run seeded with ``seed`` (numpy's SeedSequence of the pair)."""
    return int(np.random.SeedSequence([int(seed), int(chunk)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def chunk_generator(seed: int, chunk: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with :func:`chunk_seed` (seed, chunk)."""
    return torch.Generator(device).manual_seed(chunk_seed(seed, chunk))


def gather_to_main(local: dict[int, Any], group: ProcessGroup | None = None) -> dict[int, Any] | None:
    """Merge every rank's {chunk: result} on rank 0 (sorted by chunk); None on the other ranks.

    Tensors should be on the CPU (they travel pickled through ``gather_object``).
    """
    group = group or process_group()
    if group.world_size == 1:
        return dict(sorted(local.items()))
    parts: list[Any] | None = [None] * group.world_size if group.is_main else None
    dist.gather_object(local, parts, dst=0)
    if not group.is_main:
        return None
    merged: dict[int, Any] = {}
    for part in parts:
        merged.update(part)
    return dict(sorted(merged.items()))


def derived_seed(seed: int, purpose: int) -> int:
    """A 63-bit seed for one use (``purpose``) of a run's ``seed``, independent of :func:`chunk_seed`'s streams."""
    return int(np.random.SeedSequence([int(seed), 2**32 + purpose]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def keyed_prior(sde: SDE, seed: int, index: range, event_shape: Sequence[int], *, device: torch.device | str = "cpu",
                dtype: torch.dtype | None = None) -> Tensor:  # fmt: skip
    """x_T ~ N(0, prior_std^2 I) for samples ``index`` of a run seeded with ``seed``: row i depends on (seed, i) only.

    Returns:
        Tensor of shape (len(index), *event_shape).
    """
    s = derived_seed(seed, 0)
    idx = torch.arange(index.start, index.stop, dtype=torch.int64)
    z = keyed_normal(hash_words(s & 0xFFFFFFFF, s >> 32, idx), tuple(event_shape), torch.float64, torch.device("cpu"))
    return (sde.prior_std * z).to(device=device, dtype=dtype or torch.get_default_dtype())


class SamplingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`sample_sharded` in a single process; carries the batches finished before it.

    Attributes:
        samples: The finished samples 0 .. k-1 (k, *event_shape) on the CPU, or None when no batch had finished.
        n: The number of samples asked for.
    """

    def __init__(self, samples: Tensor | None, n: int) -> None:
        super().__init__(f"interrupted after {0 if samples is None else len(samples)} of {n} samples")
        self.samples, self.n = samples, n


@dataclass
class ShardedSampleInfo:
    """What :func:`sample_sharded` did: NFE per chunk (all chunks, on rank 0), this rank's wall time, grid steps."""

    nfe: list[int]
    wall_time: float
    world_size: int
    batch_size: int
    steps: int | None = None


def sample_sharded(
    sde: SDE,
    score_fn: ScoreFn,
    n: int,
    event_shape: Sequence[int],
    *,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    group: ProcessGroup | None = None,
    **sample_options: Any,
) -> tuple[Tensor | None, ShardedSampleInfo | None]:
    """n samples drawn in chunks of ``batch_size`` spread over ranks; sample i is a function of (seed, i) alone.

    Sample i starts from :func:`keyed_prior` (seed, i), and every noise draw of the solver is keyed by (seed, i,
    draw count) (``noise`` = :class:`~scoresde.solvers.noise.KeyedNoise` with the chunk's index offset). So 1 or N
    processes, and any ``batch_size``, give the same samples up to the round-off of batched arithmetic, except
    where a solver itself couples the batch: ``ancestral``'s default ``variance="analytic"`` (Gamma is a batch mean)
    and PC's Langevin corrector with ``snr_rule="batch"`` (one step size per batch, the reference's rule). There
    sample i is fixed by (seed, batch_size, i) and the number of processes still does not matter.

    Args:
        sde, score_fn: As for :func:`scoresde.sample`.
        n: Total number of samples.
        event_shape: Shape of one sample.
        seed: Base seed; it fixes every sample, for any number of processes and batch size.
        batch_size: Samples per sampler call (the chunk size).
        device: Where to sample (default: the CPU).
        group: The process group (default: :func:`process_group`).
        **sample_options: Further arguments of :func:`scoresde.sample` (solver, steps, eps, ...).

    Returns:
        On rank 0 the samples (n, *event_shape) on the CPU in index order and a :class:`ShardedSampleInfo`;
        (None, None) on the other ranks.

    Raises:
        SamplingInterrupted: on Ctrl-C in a single process, with the samples of the batches finished before it.
    """
    for key in ("noise", "start", "generator"):
        if key in sample_options:
            raise ValueError(f"sample_sharded sets {key!r} itself (from seed and the sample index); do not pass it")
    group = group or process_group()
    device = torch.device(device) if device is not None else torch.device("cpu")
    chunks = range(num_chunks(n, batch_size))
    local, start, steps = {}, time.perf_counter(), None
    path_seed, dtype = derived_seed(seed, 1), sample_options.pop("dtype", None)
    try:
        for k in shard(chunks, group):
            idx = chunk_range(k, n, batch_size)
            x_T = keyed_prior(sde, seed, idx, event_shape, device=device, dtype=dtype)
            noise = KeyedNoise(path_seed, offset=idx.start)
            x, info = sample(sde, score_fn, None, start=x_T, noise=noise, generator=chunk_generator(seed, k, device),
                             device=device, dtype=dtype, **sample_options)  # fmt: skip
            local[k], steps = (x.cpu(), info.nfe), info.steps
    except KeyboardInterrupt:
        if group.world_size > 1:
            raise
        done = torch.cat([local[k][0] for k in sorted(local)]) if local else None  # chunks 0..k-1, in order
        raise SamplingInterrupted(done, n) from None
    wall = time.perf_counter() - start
    merged = gather_to_main(local, group)
    if merged is None:
        return None, None
    x = torch.cat([v[0] for v in merged.values()])
    return x, ShardedSampleInfo([v[1] for v in merged.values()], wall, group.world_size, batch_size, steps)
