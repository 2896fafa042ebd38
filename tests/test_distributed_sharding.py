"""Sampling and likelihoods spread over processes (gloo on CPU) give exactly what one process gives."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_cli_likelihood import _likelihood_config, _write_checkpoint

import scoresde
from scoresde.cli.likelihood import evaluate
from scoresde.distributed import (
    ProcessGroup,
    chunk_generator,
    chunk_range,
    chunk_seed,
    num_chunks,
    process_group,
    sample_sharded,
    shard,
)

TARGET = scoresde.oracle.Gaussian(torch.tensor([1.0, -1.0]), std=torch.tensor([0.5, 2.0]))
SDE = scoresde.VPSDE()
OPTIONS = dict(solver="euler_maruyama", steps=5)
ROOT = str(Path(__file__).resolve().parents[1])  # this checkout's package, also in subprocesses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init(rank, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)


def _sample_worker(rank, world, port, out):
    _init(rank, world, port)
    x, info = sample_sharded(SDE, TARGET.score_fn(SDE), 10, (2,), seed=3, batch_size=3, **OPTIONS)
    if rank == 0:
        torch.save({"x": x, "nfe": info.nfe, "world": info.world_size}, out)
    else:
        assert x is None and info is None
    dist.destroy_process_group()


def _likelihood_worker(rank, world, port, ckpt, out):
    _init(rank, world, port)
    summary = evaluate(_likelihood_config(ckpt, "limit=12", "batch_size=5", "divergence=rademacher"), "cpu")
    if rank == 0:
        torch.save(summary, out)
    else:
        assert summary is None
    dist.destroy_process_group()


def test_chunks_shards_and_seeds():
    assert num_chunks(10, 3) == 4 and list(chunk_range(3, 10, 3)) == [9]
    assert shard(range(7), ProcessGroup(1, 3)) == [1, 4] and shard(range(7), ProcessGroup()) == list(range(7))
    seeds = {chunk_seed(s, k) for s in range(3) for k in range(100)}
    assert len(seeds) == 300 and all(0 <= s < 2**63 for s in seeds)
    assert chunk_seed(3, 2) == chunk_seed(3, 2) and process_group() == ProcessGroup(0, 1)
    with pytest.raises(ValueError, match="chunk_size"):
        num_chunks(10, 0)


def test_a_sample_is_fixed_by_seed_batch_size_and_index():
    x, info = sample_sharded(SDE, TARGET.score_fn(SDE), 10, (2,), seed=3, batch_size=3, **OPTIONS)
    assert x.shape == (10, 2) and info.nfe == [6] * 4 and info.world_size == 1
    # chunk 2 (samples 6..8) alone, with its own generator
    direct, _ = scoresde.sample(SDE, TARGET.score_fn(SDE), (3, 2), generator=chunk_generator(3, 2), **OPTIONS)
    assert torch.equal(x[6:9], direct)


@pytest.mark.slow
def test_two_processes_sample_what_one_process_samples(tmp_path):
    single, _ = sample_sharded(SDE, TARGET.score_fn(SDE), 10, (2,), seed=3, batch_size=3, **OPTIONS)
    mp.spawn(_sample_worker, args=(2, _free_port(), str(tmp_path / "x.pt")), nprocs=2, join=True)
    two = torch.load(tmp_path / "x.pt", weights_only=True)
    assert two["world"] == 2 and two["nfe"] == [6] * 4
    assert torch.equal(two["x"], single)


@pytest.mark.slow
def test_two_processes_evaluate_the_likelihood_of_one_process(tmp_path):
    ckpt = _write_checkpoint(tmp_path / "checkpoints", "mixture")
    single = evaluate(_likelihood_config(ckpt, "limit=12", "batch_size=5", "divergence=rademacher"), "cpu")
    mp.spawn(_likelihood_worker, args=(2, _free_port(), ckpt, str(tmp_path / "s.pt")), nprocs=2, join=True)
    two = torch.load(tmp_path / "s.pt", weights_only=False)
    assert two["settings"]["processes"] == 2 and single["settings"]["processes"] == 1
    assert two["model"] == single["model"] and two["nfe_per_batch"] == single["nfe_per_batch"]
    assert len(two["nfe_per_batch"]) == 3


@pytest.mark.slow
def test_torchrun_sample_cli_with_two_processes_equals_one(tmp_path):
    ckpt = _write_checkpoint(tmp_path / "checkpoints", "mixture")
    results = {}
    for procs in (1, 2):
        out = tmp_path / f"out{procs}"
        args = [f"ckpt={ckpt}", "solver=euler_maruyama", "n=10", "batch_size=3", "steps=5", "device=cpu",
                f"hydra.run.dir={out}"]  # fmt: skip
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--master_port",
               str(_free_port()), "-m", "scoresde.sample", *args]  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT})  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        with np.load(out / "samples.npz") as f:
            results[procs] = f["samples"], int(f["world_size"])
    assert results[1][1] == 1 and results[2][1] == 2
    np.testing.assert_array_equal(results[1][0], results[2][0])


@pytest.mark.slow
def test_torchrun_fid_sweep_point_with_two_processes_equals_one(tmp_path):
    ckpt = _write_checkpoint(tmp_path / "checkpoints", "mixture")
    samples = {}
    for procs in (1, 2):
        out = tmp_path / f"sweep{procs}"
        args = [f"ckpt={ckpt}", "solver=euler_maruyama", "steps=4", "num_samples=40", "batch_size=15",
                "kid_subsets=2", "kid_subset_size=20", "device=cpu", "progress=false", f"out_dir={out}",
                f"hydra.run.dir={tmp_path / f'run{procs}'}"]  # fmt: skip
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--master_port",
               str(_free_port()), f"{ROOT}/benchmarks/fid_sweep.py", *args]  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT,
                                   "SCORESDE_CACHE": str(tmp_path / "cache")})  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        (point,) = (out / "points").glob("*.json")
        record = json.loads(point.read_text())
        assert record["processes"] == procs and record["num_samples"] == 40
        samples[procs] = torch.load(point.with_suffix(".pt"), weights_only=True)
    assert samples[1].shape == (40, 2) and torch.equal(samples[1], samples[2])
