"""Sampling and likelihoods spread over processes (gloo on CPU) give exactly what one process gives."""

import json
import os
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
    chunk_range,
    chunk_seed,
    derived_seed,
    keyed_prior,
    num_chunks,
    process_group,
    sample_sharded,
    shard,
)
from scoresde.solvers.noise import KeyedNoise

TARGET = scoresde.oracle.Gaussian(torch.tensor([1.0, -1.0]), std=torch.tensor([0.5, 2.0]))
SDE = scoresde.VPSDE()
OPTIONS = dict(solver="euler_maruyama", steps=5)
ROOT = str(Path(__file__).resolve().parents[1])  # this checkout's package, also in subprocesses


def _init(rank, world, rendezvous):
    # a file rendezvous: no port to pick, so no race with other processes taking the same free port
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    torch.set_num_threads(1)


def _sample_worker(rank, world, rendezvous, out):
    _init(rank, world, rendezvous)
    x, info = sample_sharded(SDE, TARGET.score_fn(SDE), 10, (2,), seed=3, batch_size=3, **OPTIONS)
    if rank == 0:
        torch.save({"x": x, "nfe": info.nfe, "world": info.world_size}, out)
    else:
        assert x is None and info is None
    dist.barrier()  # leave together: a rank that tears gloo down while the other still talks can abort
    dist.destroy_process_group()


def _likelihood_worker(rank, world, rendezvous, ckpt, out):
    _init(rank, world, rendezvous)
    summary = evaluate(_likelihood_config(ckpt, "limit=12", "batch_size=5", "divergence=rademacher"), "cpu")
    if rank == 0:
        torch.save(summary, out)
    else:
        assert summary is None
    dist.barrier()  # leave together: a rank that tears gloo down while the other still talks can abort
    dist.destroy_process_group()


def test_chunks_shards_and_seeds():
    assert num_chunks(10, 3) == 4 and list(chunk_range(3, 10, 3)) == [9]
    assert shard(range(7), ProcessGroup(1, 3)) == [1, 4] and shard(range(7), ProcessGroup()) == list(range(7))
    seeds = {chunk_seed(s, k) for s in range(3) for k in range(100)}
    assert len(seeds) == 300 and all(0 <= s < 2**63 for s in seeds)
    assert chunk_seed(3, 2) == chunk_seed(3, 2) and process_group() == ProcessGroup(0, 1)
    with pytest.raises(ValueError, match="chunk_size"):
        num_chunks(10, 0)


BATCH_FREE = [
    dict(solver="euler_maruyama"),
    dict(solver="ancestral", variance="beta_tilde"),
    dict(solver="pc", corrector="langevin", snr_rule="sample"),
    dict(solver="dpmpp_2m_sde"),
    dict(solver="edm_sde", S_churn=10.0),
    dict(solver="adaptive_sde"),
]


@pytest.mark.parametrize("options", BATCH_FREE, ids=[o["solver"] for o in BATCH_FREE])
def test_a_sample_is_fixed_by_seed_and_index_whatever_the_batch_size(options):
    options = options | dict(nfe=12)
    x, info = sample_sharded(SDE, TARGET.score_fn(SDE), 10, (2,), seed=3, batch_size=3, **options)
    assert x.shape == (10, 2) and len(info.nfe) == 4 and info.world_size == 1
    for batch_size in (1, 4, 10):
        other, _ = sample_sharded(SDE, TARGET.score_fn(SDE), 10, (2,), seed=3, batch_size=batch_size, **options)
        torch.testing.assert_close(other, x, rtol=1e-5, atol=1e-6)
    # samples 6 and 7 alone: their prior draw and Brownian paths are keyed by (seed, index)
    start = keyed_prior(SDE, 3, range(6, 8), (2,))
    noise = KeyedNoise(derived_seed(3, 1), offset=6)
    direct, _ = scoresde.sample(SDE, TARGET.score_fn(SDE), None, start=start, noise=noise, **options)
    torch.testing.assert_close(direct, x[6:8], rtol=1e-5, atol=1e-6)
    another_seed, _ = sample_sharded(SDE, TARGET.score_fn(SDE), 10, (2,), seed=4, batch_size=3, **options)
    assert (another_seed - x).abs().min() > 0


def test_keyed_samples_have_the_right_distribution():
    """Keyed prior draws and Brownian paths still give the exact p_eps (Euler-Maruyama, 200 steps, 2000 samples)."""
    x, _ = sample_sharded(SDE, TARGET.score_fn(SDE), 2000, (2,), seed=0, batch_size=1000, solver="euler_maruyama",
                          steps=200, eps=1e-3, denoise=False, dtype=torch.float64)  # fmt: skip
    exact = TARGET.marginal(SDE, 1e-3)
    std = exact.eigvals.sqrt()
    assert ((x.mean(0) - exact.mean).abs() < 4 * std / 2000**0.5).all()
    assert ((x.std(0) / std - 1).abs() < 0.08).all()
    prior = keyed_prior(SDE, 0, range(0, 20000), (2,))
    assert abs(float(prior.mean())) < 0.03 and abs(float(prior.std()) - 1) < 0.02


def test_sample_sharded_refuses_the_options_it_sets():
    with pytest.raises(ValueError, match="noise"):
        sample_sharded(SDE, TARGET.score_fn(SDE), 4, (2,), noise="brownian", **OPTIONS)


def test_two_processes_sample_what_one_process_samples(tmp_path):
    single, _ = sample_sharded(SDE, TARGET.score_fn(SDE), 10, (2,), seed=3, batch_size=3, **OPTIONS)
    mp.spawn(_sample_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "x.pt")), nprocs=2, join=True)
    two = torch.load(tmp_path / "x.pt", weights_only=True)
    assert two["world"] == 2 and two["nfe"] == [6] * 4
    assert torch.equal(two["x"], single)


def test_two_processes_evaluate_the_likelihood_of_one_process(tmp_path):
    ckpt = _write_checkpoint(tmp_path / "checkpoints", "mixture")
    single = evaluate(_likelihood_config(ckpt, "limit=12", "batch_size=5", "divergence=rademacher"), "cpu")
    mp.spawn(
        _likelihood_worker, args=(2, str(tmp_path / "rendezvous"), ckpt, str(tmp_path / "s.pt")), nprocs=2, join=True
    )
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
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--standalone",
               "-m", "scoresde.sample", *args]  # fmt: skip
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
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--standalone",
               f"{ROOT}/benchmarks/fid_sweep.py", *args]  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT,
                                   "SCORESDE_CACHE": str(tmp_path / "cache")})  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        (point,) = (out / "points").glob("*.json")
        record = json.loads(point.read_text())
        assert record["processes"] == procs and record["num_samples"] == 40
        samples[procs] = torch.load(point.with_suffix(".pt"), weights_only=True)
    assert samples[1].shape == (40, 2) and torch.equal(samples[1], samples[2])
