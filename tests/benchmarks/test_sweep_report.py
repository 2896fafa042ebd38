"""benchmarks/sweep_report.py: the table and plot never claim one N or checkpoint step for points that differ."""

import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from sweep_report import aggregate  # noqa: E402


def _point(label, steps, nfe, n, ckpt_step, **extra):
    return {"label": label, "solver": "s", "options": extra.pop("options", {}), "steps": steps,
            "steps_requested": extra.pop("steps_requested", steps), "nfe": nfe, "wall_time": 1.0, "fid": 5.0,
            "fid_matched": None, "floor_fid": 4.0, "floor_n": n, "kid": 0.1, "floor_kid": 0.1, "num_samples": n,
            "seed": 0, "dataset": "digits", "extractor": "raw", "ckpt_step": ckpt_step, "device": "cpu",
            "threads": 1, "torch": "2", **extra}  # fmt: skip


def test_points_that_differ_get_their_own_columns_and_adaptive_steps_are_named(tmp_path):
    points = tmp_path / "points"
    points.mkdir()
    rows = [
        _point("pc", 10, 11, 100, 500),
        _point("pc", 20, 21, 200, 1000),
        _point("ode", 1, 45, 100, 500, options={"method": "dopri5"}, steps_requested=None),  # written before "adaptive"
        _point("ode", None, 69, 100, 500, options={"method": "dopri5"}, adaptive=True),
    ]
    for i, r in enumerate(rows):
        (points / f"p{i}.json").write_text(json.dumps(r))
    assert aggregate(tmp_path).points == 4
    table = (tmp_path / "fid_sweep.md").read_text().splitlines()
    head = table[0]
    assert "| N |" in head and "| ckpt step |" in head and "FID (N per row)" in head and "N=100" not in head
    ode_rows = [line for line in table if line.startswith("| ode ")]
    assert len(ode_rows) == 2 and all("| adaptive |" in line for line in ode_rows)
    footer = table[-1]
    assert "per row: N, floor n, ckpt step" in footer and "N 100" not in footer and "dataset digits" in footer
    with (tmp_path / "fid_sweep.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [(r["label"], r["steps"], r["adaptive"]) for r in csv_rows] == [
        ("ode", "", "True"), ("ode", "", "True"), ("pc", "10", "False"), ("pc", "20", "False")]  # fmt: skip
