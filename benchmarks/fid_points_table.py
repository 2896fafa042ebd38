"""Gather ``benchmarks/fid_sweep.py`` points from several sweep folders into one stored table with provenance.

    python benchmarks/fid_points_table.py --ckpt VP=CKPT_VP --ckpt VE=CKPT_VE --points main=OUT1 --points s6=OUT2 \\
        --out benchmarks/results/NAME --note "load average 4-5"

Each ``--points GROUP=DIR`` is a sweep's ``out_dir``; each ``--ckpt NAME=RUN`` a run directory (or checkpoint file)
the sweeps sampled, recognised in the points by its checkpoint's SHA-256. Writes ``NAME.csv`` (one row per point:
group, solver label and options, checkpoint name, seed, NFE, FID at the floor's n, the floor, and the point's own
commit, command, machine and threads, with every given path replaced by its name) and ``NAME.md`` (FID at n against
NFE, one line per group, label, checkpoint and seed), both under the provenance of this aggregation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not (sep and name and value):
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, value


def _checkpoint_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.glob("checkpoints/*.pt")) + sorted(path.glob("*.pt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=_pair, action="append", required=True, help="NAME=RUN (repeat)")
    parser.add_argument("--points", type=_pair, action="append", required=True, help="GROUP=OUT_DIR (repeat)")
    parser.add_argument("--out", required=True, help="output path without suffix, e.g. benchmarks/results/x")
    parser.add_argument("--note", default="", help="stored with the provenance (e.g. the load average)")
    args = parser.parse_args()
    names = {}
    for name, path in args.ckpt:
        files = _checkpoint_files(Path(path))
        if not files:
            raise SystemExit(f"--ckpt {name}: no checkpoint file under {path}")
        for f in files:
            names[hashlib.sha256(f.read_bytes()).hexdigest()] = name
    hide = {path: f"CKPT_{name}" for name, path in args.ckpt}
    hide |= {path: f"OUT{i}" for i, (_, path) in enumerate(args.points)}
    rows = []
    for group, folder in args.points:
        for f in sorted(Path(folder).glob("points/*.json")):
            p = json.loads(f.read_text())
            command = p["command"]
            for path, name in sorted(hide.items(), key=lambda item: -len(item[0])):
                command = command.replace(str(Path(path).resolve()), name).replace(path, name)
            rows.append({
                "group": group, "label": p["label"], "options": json.dumps(p["options"], sort_keys=True),
                "ckpt": names.get(p["ckpt_sha256"], "unknown"), "seed": p["seed"], "nfe_requested": p["nfe_requested"],
                "nfe": p["nfe"], "num_samples": p["n"], "fid_matched": round(p["fid_matched"], 3),
                "floor_n": p["floor_n"], "floor_fid": round(p["floor_fid"], 3), "commit": p["commit"],
                "command": command, "machine": p["machine"], "threads": p["threads"], "finished": p["finished"],
            })  # fmt: skip
    meta = provenance.record(placeholders={name: path for path, name in hide.items()}, note=args.note)
    out = Path(args.out)
    provenance.write_csv(out.with_suffix(".csv"), rows, meta)
    table: dict[tuple, dict[int, float]] = {}
    for r in rows:
        table.setdefault((r["group"], r["label"], r["ckpt"], r["seed"]), {})[r["nfe_requested"]] = r["fid_matched"]
    budgets = sorted({r["nfe_requested"] for r in rows})
    floors = sorted({(r["floor_n"], r["floor_fid"]) for r in rows})
    lines = [f"## Digits FID at n = {floors[0][0]} against the budget (floor {floors[0][1]})" if len(floors) == 1
             else f"## Digits FID against the budget (floors {floors})", "",
             "| group | solver | checkpoint | seed | " + " | ".join(f"nfe={b}" for b in budgets) + " |",
             "|---" * (4 + len(budgets)) + "|"]  # fmt: skip
    for key in sorted(table, key=lambda k: (k[0], k[1], k[2], k[3])):
        cells = [f"{table[key][b]:.2f}" if b in table[key] else "" for b in budgets]
        lines.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(cells) + " |")
    commits = sorted({(r["group"], r["commit"]) for r in rows})
    lines += ["", "Points per group were sampled at: " + "; ".join(f"{g} {c}" for g, c in commits), ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
