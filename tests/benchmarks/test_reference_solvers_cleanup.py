"""Loading the reference solvers leaves no temporary folder behind (issue 17: one scoresde_refs_* per test run)."""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import reference_solvers  # noqa: E402


def test_load_leaves_no_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = set(sys.modules)
    try:
        reference_solvers.load()  # with or without the snapshots on this machine
    finally:
        for name in set(sys.modules) - before:  # their modules and the stand-ins load() registers
            del sys.modules[name]
    assert list(tmp_path.glob("scoresde_refs_*")) == []
