"""Provenance of a stored benchmark result: commit, command, machine and threads, written beside every CSV.

Every benchmark that stores a result calls :func:`record` once and passes the dict to :func:`write_csv` (a
``# key: value`` header before the rows) and/or :func:`write_json`; the docs pages quote results only through
these files, so a figure always carries where it came from.

Reference code (NVlabs/edm, DPM-Solver, UniPC, k-diffusion, openai/consistency_models, score_sde_pytorch) is never
a dependency: :func:`reference_repo` finds a snapshot through the ``SCORESDE_REFERENCE_ROOT`` environment variable
(a folder holding ``<owner>+<name>/`` git directories or work trees) and checks it out at the commit the benchmark
pins, into a temporary folder the caller owns.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record(threads: int | None = None, placeholders: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """What produced a result: commit (with ``+dirty`` for uncommitted changes), command, machine, threads.

    Args:
        threads: torch threads the run used (default: ``torch.get_num_threads()``).
        placeholders: name -> a machine-local path given on the command line (a checkpoint, a run directory): the
            stored command says the name instead (``ckpt=RUN``), so no machine's paths reach the repository.
        extra: Further fields to store (seed, dtype, ...).
    """
    commit = _git("rev-parse", "--short=12", "HEAD")
    # stored results are not code: a benchmark that rewrites its own result files as it goes stays clean
    if commit != "unknown" and _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"):
        commit += "+dirty"
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *_relative_argv()])
    for name, path in sorted((placeholders or {}).items(), key=lambda item: -len(item[1])):  # longest first
        if path:
            command = command.replace(str(path), name)
    return {
        "commit": commit,
        "command": command,
        "machine": f"{_cpu_name()}, {cores} cores" + (f", {cuda}" if cuda else ""),
        "threads": torch.get_num_threads() if threads is None else threads,
        "torch": torch.__version__,
        **extra,
    }


def _relative_argv() -> list[str]:
    """sys.argv with the script path relative to the repository (no machine-local paths in stored results)."""
    argv = list(sys.argv)
    if argv:
        try:
            argv[0] = str(Path(argv[0]).resolve().relative_to(ROOT))
        except ValueError:
            argv[0] = Path(argv[0]).name
    return argv


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], meta: Mapping[str, Any]) -> Path:
    """Write ``rows`` as CSV under a ``# key: value`` provenance header; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as fh:
        for key, value in meta.items():
            fh.write(f"# {key}: {value}\n")
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def read_csv(path: str | Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The provenance header and the rows of a file written by :func:`write_csv`."""
    meta: dict[str, str] = {}
    lines = Path(path).read_text().splitlines()
    body = []
    for line in lines:
        if line.startswith("# ") and not body:
            key, _, value = line[2:].partition(": ")
            meta[key] = value
        else:
            body.append(line)
    return meta, list(csv.DictReader(body))


def write_json(path: str | Path, payload: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write ``{"provenance": meta, **payload}`` as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"provenance": dict(meta), **payload}, indent=2, default=str) + "\n")
    return path


def reference_repo(owner_name: str, commit: str, dest: str | Path | None = None, paths: Sequence[str] = ()) -> Path:
    """A work tree of the public repository ``owner/name`` at ``commit``, extracted from a local snapshot.

    ``paths`` limits the extraction to those files (a snapshot may lack the repository's large binary files).

    The snapshot is looked up as ``$SCORESDE_REFERENCE_ROOT/<owner>+<name>`` (a bare git directory, or a folder
    holding one as ``repo/`` or ``.git/``). Raises ``FileNotFoundError`` naming the variable when it is unset or the
    snapshot is missing, and ``ValueError`` when the snapshot lacks the pinned commit.
    """
    root = os.environ.get("SCORESDE_REFERENCE_ROOT")
    if not root:
        raise FileNotFoundError(
            f"set SCORESDE_REFERENCE_ROOT to a folder holding a snapshot of {owner_name} as "
            f"{owner_name.replace('/', '+')}/ (a git directory) to run the side-by-side comparison"
        )
    base = Path(root) / owner_name.replace("/", "+")
    candidates = [base / "repo", base / ".git", base]
    gitdir = next((c for c in candidates if (c / "HEAD").is_file() or (c / "objects").is_dir()), None)
    if gitdir is None:
        raise FileNotFoundError(f"no git snapshot of {owner_name} under {base}")
    dest = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="scoresde_ref_"))
    dest.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(
            ["git", "--git-dir", str(gitdir), "archive", commit, "--", *paths], capture_output=True, check=True
        ).stdout
    except subprocess.CalledProcessError as err:
        raise ValueError(f"the snapshot of {owner_name} at {gitdir} has no commit {commit}: {err.stderr!r}") from err
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest
