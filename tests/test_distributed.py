"""DistributedDataParallel on CPU (gloo): two processes train a few steps and end with identical replicas."""

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from standins import TinyScore, gaussian_data

from scoresde import VPSDE
from scoresde.batching import BatchOrder
from scoresde.training import TrainConfig, Trainer


def _worker(rank, world, rendezvous, run_dir):
    # a file rendezvous: no port to pick, so no race with other processes taking the same free port
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(rank)  # different initial weights: DDP must start every replica from rank 0's
    model = TinyScore(VPSDE(), dropout=0.2)
    cfg = TrainConfig(steps=5, batch_size=32, checkpoint_every=5, log_every=1, lr=1e-2)
    result = Trainer(model, gaussian_data(128)[1], cfg, run_dir=run_dir, seed=0, progress=False).fit()
    torch.save({"params": model.state_dict(), "deviation": result.replica_deviation}, f"{run_dir}/rank{rank}.pt")
    dist.barrier()  # leave together: a rank that tears gloo down while the other still talks can abort
    dist.destroy_process_group()


def test_two_cpu_processes_keep_identical_replicas(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name, value in a["params"].items():
        assert torch.equal(value, b["params"][name]), name
    assert a["deviation"] == 0.0 and b["deviation"] == 0.0
    torch.manual_seed(0)
    init = TinyScore(VPSDE(), dropout=0.2).state_dict()
    assert not torch.equal(init["net.0.weight"], a["params"]["net.0.weight"])  # it trained
    # one writer: the checkpoint (rank 0) holds the shared weights; metrics have one line per step
    ckpt = torch.load(tmp_path / "checkpoints" / "ckpt_00000005.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and torch.equal(ckpt["model"]["net.0.weight"], a["params"]["net.0.weight"])
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 5


def test_ranks_see_disjoint_shards_of_the_single_process_batch():
    single = BatchOrder(100, 8, seed=3)
    ranks = [BatchOrder(100, 8, rank=r, world_size=2, seed=3) for r in range(2)]
    for _ in range(30):  # crosses epoch boundaries (12 batches per epoch)
        whole = single.next_indices()
        shards = [o.next_indices() for o in ranks]
        assert torch.equal(torch.sort(torch.cat(shards)).values, torch.sort(whole).values)
        assert not set(shards[0].tolist()) & set(shards[1].tolist())
    with pytest.raises(ValueError, match="divisible"):
        BatchOrder(100, 9, world_size=2)


def test_torchrun_runs_the_cli_with_two_processes(tmp_path):
    """The same entry point under torchrun --nproc_per_node=2: one run directory, replicas equal (about 25 s: the
    default run's one torchrun test, so the CLI's process-group setup is covered where CI looks)."""
    run = tmp_path / "run"
    args = ["data=gaussian", "data.dataset.n_train=512", "model=mlp", "model.net.width=16", "train.steps=6",
            "train.batch_size=64", "solver=euler_maruyama", "sample.steps=4", "sample.n=8", "eval.n_test=0",
            "progress=false", "device=cpu", f"hydra.run.dir={run}"]  # fmt: skip
    # --standalone: torchrun's own store binds a free port and keeps it (no port picked, then bound, by us)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "scoresde.train",
           *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DDP: 2 replicas, max |theta - theta_rank0| = 0" in (run / "train.log").read_text()
    assert (run / "checkpoints" / "ckpt_00000006.pt").is_file() and (run / "samples_final.png").is_file()
