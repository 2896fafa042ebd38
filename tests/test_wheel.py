"""The built wheel, installed into a fresh virtual environment, runs the CLI from a directory outside the repository.

About 15-40 s (building, installing, three CLI runs), so it stays in the default run and in CI (.ci/run).

torch and the other dependencies come from the environment running the tests (a .pth file in the fresh venv
points at its site-packages), so nothing is downloaded; scoresde itself comes only from the wheel.
"""

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data=gaussian", "data.dataset.n_train=256", "data.dataset.n_test=32", "model=mlp", "model.net.width=16",
        "model.net.num_blocks=1", "train.steps=4", "train.batch_size=32", "train.log_every=2", "sample.n=8",
        "sample.steps=3", "solver=euler_maruyama", "eval.n_test=4", "eval.rtol=1e-2", "eval.atol=1e-2",
        "progress=false", "device=cpu"]  # fmt: skip


def _check(cmd, **kwargs):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _site_packages(python: Path) -> Path:
    out = _check([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout
    return Path(out.strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv holding only the freshly built wheel of this checkout; returns its bin/ directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    # setuptools stages files in build/ beside pyproject.toml: build from a copy so the checkout stays as it was
    src = tmp / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".venv", "outputs", "multirun")
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "NOTICE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "scoresde", src / "scoresde", ignore=skip)
    # without build isolation when setuptools is at hand (no download); Python >= 3.12 venvs lack it, pip fetches it
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    _check([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", tmp / "dist", src])
    (wheel,) = (tmp / "dist").glob("scoresde-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {"scoresde/data/digits.npz", "scoresde/conf/config.yaml"} <= names, "the wheel lacks its data or configs"
    assert not any(n.startswith("scoresde/_build") or n == "backend.py" for n in names)
    venv = tmp / "venv"
    _check([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv])
    python = venv / "bin" / "python"
    # the dependencies (torch, hydra, ...) from this environment, after the venv's own site-packages
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (_site_packages(python) / "_test_parent_env.pth").write_text("\n".join(parents) + "\n")
    _check([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-build-isolation",
            "--no-index", wheel])  # fmt: skip
    return venv / "bin"


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "OMP_NUM_THREADS": "1"}


def test_installed_wheel_trains_and_samples_outside_the_repository(installed, tmp_path):
    where = tmp_path / "elsewhere"
    where.mkdir()
    origin = _check([installed / "python", "-c", "import scoresde; print(scoresde.__file__)"], cwd=where, env=_env())
    assert Path(origin.stdout.strip()).is_relative_to(installed.parent), origin.stdout  # the wheel, not the checkout
    # the default dataset comes from the wheel's own data file (scikit-learn is not needed)
    shape = _check([installed / "python", "-c", "import scoresde; print(tuple(scoresde.data.digits().train.shape))"],
                   cwd=where, env=_env())  # fmt: skip
    assert shape.stdout.strip() == "(1500, 1, 8, 8)"

    _check([installed / "python", "-m", "scoresde.train", *TINY, "hydra.run.dir=run"], cwd=where, env=_env())
    summary = json.loads((where / "run" / "summary.json").read_text())
    assert summary["step"] == 4 and summary["eval"]["unit"] == "nats/dim"
    assert not (where / "outputs").exists()

    _check([installed / "scoresde-sample", "ckpt=run", "solver=euler_maruyama", "n=5", "steps=3", "device=cpu",
            "hydra.run.dir=sampled"], cwd=where, env=_env())  # fmt: skip
    with np.load(where / "sampled" / "samples.npz") as f:
        assert f["samples"].shape == (5, 2) and np.isfinite(f["samples"]).all()

    _check([installed / "scoresde-likelihood", "ckpt=run", "limit=4", "rtol=1e-2", "atol=1e-2", "device=cpu",
            "progress=false", "hydra.run.dir=nll"], cwd=where, env=_env())  # fmt: skip
    assert json.loads((where / "nll" / "likelihood.json").read_text())["n"] == 4


def test_the_configs_live_in_the_package_and_conf_links_to_them():
    """One config tree: scoresde/conf (package data); the repository's top-level conf is a link to it."""
    assert (ROOT / "conf").is_symlink() and (ROOT / "conf").resolve() == (ROOT / "scoresde" / "conf").resolve()
    assert (ROOT / "scoresde" / "conf" / "config.yaml").is_file()
    text = (ROOT / "pyproject.toml").read_text()
    assert "package-dir" not in text and "backend-path" not in text  # standard discovery, standard backend
