"""Run one digits training job through the CLI and store its test bits/dim with provenance.

    python benchmarks/digits_recipe_run.py [--threads N] NAME RUN [OVERRIDE ...]

runs ``python -m scoresde.train OVERRIDE ... progress=false hydra.run.dir=RUN`` (RUN: a directory outside the
repository) and writes ``benchmarks/results/digits_default_recipe/NAME.json``: the CLI's eval.json (the paired
verdict against the per-pixel categorical baseline on the first 128 test digits), the training seconds and steps/s
from summary.json, the machine's load average before and after, and the provenance (commit, command with RUN in
place of the path, machine, threads). ``--record-only`` stores a run that has already finished in RUN (its
overrides read back from RUN/.hydra/overrides.yaml; the load is then not known).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import ROOT, record, write_json  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "digits_default_recipe"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="result file name (without .json)")
    parser.add_argument("run_dir", type=Path, help="the CLI's run directory (outside the repository)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides of python -m scoresde.train")
    parser.add_argument("--record-only", action="store_true", help="store a finished run of RUN")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process (default 1)")
    args = parser.parse_args()
    run_dir = args.run_dir.resolve()
    load_before = load_after = None
    meta = record(
        threads=args.threads, placeholders={"RUN": str(args.run_dir), "RUN ": str(run_dir)}
    )  # the commit it ran at
    overrides = list(args.overrides)
    if args.record_only:
        overrides = [o for o in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
                     if not o.startswith(("hydra.run.dir=", "progress="))]  # fmt: skip
    else:
        load_before = os.getloadavg()
        cmd = [sys.executable, "-m", "scoresde.train", *overrides, f"threads={args.threads}", "progress=false",
               f"hydra.run.dir={run_dir}"]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        load_after = os.getloadavg()
    summary = json.loads((run_dir / "summary.json").read_text())
    meta["cli_command"] = " ".join(["python -m scoresde.train", *overrides, f"threads={args.threads}", "progress=false",
                                   "hydra.run.dir=RUN"])  # fmt: skip
    payload = {
        "overrides": overrides,
        "train_seconds": summary.get("train_time_s", summary.get("wall_time")),
        "steps_per_s": summary.get("steps_per_s"),
        "final_loss": summary.get("final_loss"),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "eval": summary["eval"],
    }
    path = write_json(OUT / f"{args.name}.json", payload, meta)
    p = summary["eval"]["paired"]["per-pixel categorical"]
    print(f"{args.name}: {summary['eval']['model'][0]:.4f} bits/dim, model - categorical {p['mean']:+.4f} "
          f"({p['stderr']:.4f}), z = {p['z']:+.1f}; wrote {path.relative_to(ROOT)}")  # fmt: skip


if __name__ == "__main__":
    main()
