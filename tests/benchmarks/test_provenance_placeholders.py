"""benchmarks/provenance.py: a stored command names machine-local paths by placeholder, never by the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import provenance  # noqa: E402


def test_placeholders_replace_the_paths_in_the_stored_command(monkeypatch, tmp_path):
    run, sweep = str(tmp_path / "runs" / "vp"), str(tmp_path / "runs" / "vp" / "sweep")  # nested: longest first
    monkeypatch.setattr(sys, "argv", ["benchmarks/fid_sweep.py", "-m", f"ckpt={run}", f"hydra.sweep.dir={sweep}"])
    meta = provenance.record(placeholders={"RUN": run, "SWEEP_DIR": sweep}, seed=3)
    assert meta["command"].endswith(" benchmarks/fid_sweep.py -m ckpt=RUN hydra.sweep.dir=SWEEP_DIR")
    assert str(tmp_path) not in str(meta) and meta["seed"] == 3
    assert provenance.record(placeholders={"RUN": ""})["command"].endswith(f"ckpt={run} hydra.sweep.dir={sweep}")
