"""Aggregate the per-point JSON files of a FID sweep into a CSV, a PNG (FID against NFE) and a markdown table,
plus image grids of the best and the cheapest point when their samples were saved.

``python benchmarks/sweep_report.py DIR`` does it by hand; ``benchmarks/fid_sweep.py`` calls it after every point.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

COLUMNS = [
    "label", "steps", "adaptive", "nfe", "wall_time", "fid", "fid_matched", "floor_fid", "floor_n", "kid", "kid_std",
    "floor_kid", "score", "floor_score", "mmd", "floor_mmd", "sliced_w2", "floor_sliced_w2", "nll", "floor_nll",
    "num_samples", "seed", "dataset", "extractor", "ckpt_step", "solver", "options", "schedule", "device", "threads",
    "torch", "finished", "commit", "machine", "command",
]  # fmt: skip


@dataclass(frozen=True)
class Aggregate:
    """What :func:`aggregate` wrote."""

    points: int
    files: tuple[Path, ...]


def load_points(out_dir: Path) -> list[dict]:
    """All point records under ``out_dir/points``, sorted by label and NFE."""
    rows = [{**json.loads(p.read_text()), "_path": p} for p in sorted((out_dir / "points").glob("*.json"))]
    return sorted(rows, key=lambda r: (r["label"], r["nfe"], r.get("steps") or 0))


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            row = {k: json.dumps(r[k]) if isinstance(r.get(k), dict) else r.get(k) for k in COLUMNS}
            adaptive = steps_cell(r) == "adaptive"
            w.writerow({**row, "adaptive": adaptive, "steps": None if adaptive else r.get("steps")})


def _varying_options(rows: list[dict]) -> dict[str, list[str]]:
    """Per label, the solver options whose values differ between its points (shown in the table)."""
    out = {}
    for label in {r["label"] for r in rows}:
        opts = [r.get("options") or {} for r in rows if r["label"] == label]
        keys = sorted({k for o in opts for k in o})
        out[label] = [k for k in keys if len({json.dumps(o.get(k)) for o in opts}) > 1]
    return out


PER_POINT = {"num_samples": "N", "floor_n": "floor n", "ckpt_step": "ckpt step", "seed": "seed", "dataset": "dataset",
             "extractor": "features", "device": "device", "threads": "threads", "torch": "torch",
             "commit": "commit", "machine": "machine"}  # fmt: skip
"""Settings recorded per point: one value in the table's footer when all points share it, else a column."""

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")


def varying_settings(rows: list[dict]) -> list[str]:
    """The keys of PER_POINT whose values differ between the points."""
    return [k for k in PER_POINT if len({json.dumps(r.get(k)) for r in rows}) > 1]


def _shared(rows: list[dict], key: str, varying: list[str], text: str) -> str:
    """``text`` with the shared value of ``key`` (e.g. "N=500"), or the column name when it varies per point."""
    return f"{text}={rows[0].get(key)}" if key not in varying else f"{text} per row"


def steps_cell(r: dict) -> str:
    """The steps column: "adaptive" for adaptive ODE solves (their sampler reports 1 output interval)."""
    adaptive = r.get("adaptive")
    if adaptive is None:  # points written before the "adaptive" field
        adaptive = r.get("steps_requested") is None and (r.get("options") or {}).get("method") in ADAPTIVE_METHODS
    return "adaptive" if adaptive else _fmt(r.get("steps"))


def write_markdown(rows: list[dict], path: Path) -> None:
    matched = any(r.get("fid_matched") is not None for r in rows)
    has_score = any(r.get("score") is not None for r in rows)
    has_nll = any(r.get("nll") is not None for r in rows)
    varying = _varying_options(rows)
    per_row = varying_settings(rows)
    n, n_floor = _shared(rows, "num_samples", per_row, "N"), _shared(rows, "floor_n", per_row, "n")
    head = ["solver", "options", *(PER_POINT[k] for k in per_row), "steps", "NFE", "time (s)", f"FID ({n})"]
    head += [f"FID ({n_floor})"] if matched else []
    head += [f"FID floor ({n_floor})", "KID", "KID floor"]
    head += ["score", "score floor"] if has_score else []
    head += ["NLL", "NLL floor"] if has_nll else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        opts = ", ".join(f"{k}={r['options'][k]}" for k in varying[r["label"]])
        cells = [r["label"], opts, *(_fmt(r.get(k)) for k in per_row), steps_cell(r), _fmt(r.get("nfe")),
                 _fmt(r.get("wall_time"), 2)]  # fmt: skip
        cells += [_fmt(r.get("fid"))] + ([_fmt(r.get("fid_matched"))] if matched else [])
        cells += [_fmt(r.get("floor_fid")), _fmt(r.get("kid"), 4), _fmt(r.get("floor_kid"), 4)]
        cells += [_fmt(r.get("score"), 2), _fmt(r.get("floor_score"), 2)] if has_score else []
        cells += [_fmt(r.get("nll")), _fmt(r.get("floor_nll"))] if has_nll else []
        lines.append("| " + " | ".join(cells) + " |")
    shared = [f"{PER_POINT[k]} {rows[0].get(k)}" for k in PER_POINT if k not in per_row]
    smaller_floor = any(r.get("floor_n") is not None and r["floor_n"] < r.get("num_samples", 0) for r in rows)
    lines.append("")
    lines.append(
        "Shared by every point: " + ", ".join(shared) + ("" if not per_row else
        f"; per row: {', '.join(PER_POINT[k] for k in per_row)}") + ". Time: sampling only. Steps: solver steps "
        "('adaptive': an adaptive ODE solver chose its own steps, see the NFE). Floor: held-out test points "
        "scored the same way against the training split"
        + ("; FID (n): mean FID of random n-subsets of the N samples, the number to compare with the floor (FID is "
           "biased upwards at small n)." if matched else "")
        + ("; the floor (n) is NOT comparable with FID at a larger N: FID is biased upwards at small n (these "
           "points predate fid_matched)." if not matched and smaller_floor else "")
        + ("" if matched else ".")
    )  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def _plotted(r: dict) -> float:
    """The FID comparable with the floor: at the floor's n when N was larger, else at N."""
    return r["fid_matched"] if r.get("fid_matched") is not None else r["fid"]


def write_plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figures stay as they were

    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    per_row = varying_settings(rows)
    split = [k for k in ("ckpt_step", "num_samples") if k in per_row]  # one line per solver AND per such setting
    curve = lambda r: (r["label"], *(r.get(k) for k in split))  # noqa: E731
    for key in sorted({curve(r) for r in rows}, key=str):
        pts = sorted((r["nfe"], _plotted(r)) for r in rows if curve(r) == key and math.isfinite(r["fid"]))
        name = key[0] + "".join(f", {PER_POINT[k]} {v}" for k, v in zip(split, key[1:], strict=True))
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=name)
    matched = any(r.get("fid_matched") is not None for r in rows)
    comparable = matched or all(r.get("floor_n") == r.get("num_samples") for r in rows)
    floors = [r["floor_fid"] for r in rows if r.get("floor_fid") is not None]
    if floors and comparable:  # a floor at a smaller n than the plotted FIDs would mislead
        ax.axhline(min(floors), color="grey", linestyle="--", label="floor (held-out data)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("NFE (score evaluations per sample)")
    n = _shared(rows, "floor_n", per_row, "n") if matched else _shared(rows, "num_samples", per_row, "N")
    ax.set_ylabel(f"FID at {n} ({rows[0].get('extractor')} features)")
    ax.set_title(f"{rows[0].get('dataset')}: FID against NFE ({_shared(rows, 'num_samples', per_row, 'N')})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_grids(rows: list[dict], out_dir: Path, n: int = 64) -> list[Path]:
    """Image grids of the best (lowest comparable FID) and the cheapest (fewest NFE) point, from saved samples."""
    import torch

    from scoresde.cli.plotting import save_image_grid

    finite = [r for r in rows if math.isfinite(r["fid"]) and r["_path"].with_suffix(".pt").is_file()]
    picks = {
        "best": min(finite, key=_plotted, default=None),
        "cheapest": min(finite, key=lambda r: r["nfe"], default=None),
    }
    written = []
    for name, r in picks.items():
        if r is None:
            continue
        x = torch.load(r["_path"].with_suffix(".pt"), weights_only=True)[:n].float()
        if x.ndim != 4:
            continue  # points data: no image grid
        title = f"{name}: {r['label']} steps={steps_cell(r)} NFE={r['nfe']} FID={_plotted(r):.2f}"
        path = out_dir / f"samples_{name}.png"
        save_image_grid(x, path, data_range=tuple(r.get("data_range", (-1.0, 1.0))), title=title, scale=6)
        written.append(path)
    return written


def aggregate(out_dir: Path) -> Aggregate | None:
    """Rewrite ``fid_sweep.csv``, ``.png`` and ``.md`` in ``out_dir`` from its points (None if there are none)."""
    rows = load_points(out_dir)
    if not rows:
        return None
    files = (out_dir / "fid_sweep.csv", out_dir / "fid_sweep.png", out_dir / "fid_sweep.md")
    write_csv(rows, files[0])
    write_plot(rows, files[1])
    write_markdown(rows, files[2])
    return Aggregate(points=len(rows), files=files + tuple(write_grids(rows, out_dir)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python benchmarks/sweep_report.py OUT_DIR")
    result = aggregate(Path(sys.argv[1]))
    print(f"{result.points} points -> {', '.join(map(str, result.files))}" if result else "no points found")
