"""Process groups from torchrun (one node or several) and from SLURM (srun / hydra's submitit launcher)."""

import os
import socket
import subprocess
import sys

import pytest

from scoresde.distributed import LaunchEnv, init_from_env, launch_env

WORKER = """
import torch, torch.distributed as dist
from scoresde.cli._runtime import setup_runtime, finish
rt = setup_runtime("cpu", 1)
x = torch.tensor([float(rt.rank + 1)])
dist.all_reduce(x)
print(f"rank={rt.rank} world={rt.world_size} local={rt.local_rank} sum={x.item():g}", flush=True)
finish(rt)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SLURM_")} | {
        "OMP_NUM_THREADS": "1"
    }


def test_single_process_without_launcher():
    assert launch_env({}) == LaunchEnv()
    assert launch_env({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}).launcher == "single"  # a one-task job


def test_torchrun_environment_on_several_nodes():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert launch_env(env) == LaunchEnv(3, 4, 1, 2, "torchrun")


def test_slurm_environment_as_srun_sets_it():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1", "SLURM_TASKS_PER_NODE": "2(x2)"}
    assert launch_env(env) == LaunchEnv(3, 4, 1, 2, "slurm")
    env2 = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "0", "SLURM_NTASKS_PER_NODE": "1"}
    assert launch_env(env2) == LaunchEnv(1, 2, 0, 1, "slurm")


def test_torchrun_wins_inside_a_slurm_allocation():
    env = {"RANK": "0", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    assert launch_env(env).launcher == "torchrun"


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"SLURM_PROCID": "2", "SLURM_NTASKS": "2"}, "SLURM_PROCID=2"),
        ({"SLURM_NTASKS": "2"}, "SLURM_PROCID is unset"),
        (
            {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_LOCALID": "3", "SLURM_NTASKS_PER_NODE": "2"},
            "SLURM_LOCALID",
        ),
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK=-1"),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2"}, "LOCAL_RANK"),
        ({"RANK": "zero", "WORLD_SIZE": "2"}, "RANK='zero'"),
    ],
)
def test_inconsistent_ranks_are_refused_naming_the_variables(env, match):
    with pytest.raises(ValueError, match=match):
        launch_env(env)


def test_slurm_without_master_address_is_refused(monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR and MASTER_PORT"):
        init_from_env("cpu", LaunchEnv(0, 2, 0, 2, "slurm"))


def test_two_slurm_tasks_form_one_gloo_group():
    """Two processes with the environment srun gives two tasks on one node (gloo on the CPU)."""
    port, procs = _free_port(), []
    for rank in range(2):
        env = _clean_env() | {"SLURM_PROCID": str(rank), "SLURM_NTASKS": "2", "SLURM_LOCALID": str(rank),
                              "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_ID": "1", "MASTER_ADDR": "127.0.0.1",
                              "MASTER_PORT": str(port)}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert "rank=0 world=2 local=0 sum=3" in outs[0] and "rank=1 world=2 local=1 sum=3" in outs[1]


@pytest.mark.slow
def test_torchrun_two_nodes_with_c10d_rendezvous(tmp_path):
    """torchrun --nnodes=2 --nproc_per_node=1 --rdzv_backend=c10d, both 'nodes' on this machine."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    endpoint, procs = f"127.0.0.1:{_free_port()}", []
    for _ in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
               f"--rdzv_endpoint={endpoint}", "--rdzv_id=scoresde-test", str(script)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, env=_clean_env(), stdout=subprocess.PIPE, text=True))
    outs = "".join(p.communicate(timeout=300)[0] for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert "world=2" in outs and outs.count("sum=3") == 2
