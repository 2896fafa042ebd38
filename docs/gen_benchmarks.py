"""Generate the documentation's benchmark pages from the stored results under benchmarks/results/.

Every table the benchmark scripts wrote (``*.md``, or a ``*.csv`` without one) becomes a page of
``docs/benchmarks/``, with its plot (the ``.png`` of the same name) and the script that regenerates it; an index
page lists them all. Nothing is copied by hand, so a rerun of a benchmark updates the site on the next build.
``mkdocs build`` runs this through docs/hooks.py; ``python docs/gen_benchmarks.py`` runs it alone. The output
folder is generated (ignored by git).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "benchmarks"

SCRIPTS = {  # result name prefix -> the script that writes it (the longest matching prefix wins)
    "solver_accuracy": "benchmarks/solver_accuracy.py",
    "solver_overhead_default_model": "benchmarks/solver_overhead_default_model.py",
    "solver_overhead": "benchmarks/solver_accuracy.py --overhead-only",
    "fast_solvers": "benchmarks/fast_solvers.py",
    "stochastic_solvers": "benchmarks/stochastic_solvers.py",
    "stochastic_digits": "benchmarks/fid_sweep.py",
    "per_sample_ode": "benchmarks/per_sample_ode.py",
    "loop_overhead": "benchmarks/loop_overhead.py",
    "likelihood_accuracy": "benchmarks/likelihood_accuracy.py",
    "inpainting_accuracy": "benchmarks/inpainting_accuracy.py",
    "colorization": "benchmarks/inpainting_accuracy.py",
    "inpainting_digits": "benchmarks/inpainting_digits.py",
    "guidance_digits": "benchmarks/guidance_digits.py",
    "fid_sweep": "benchmarks/fid_sweep.py",
    "fashion_mnist": "benchmarks/fashion_mnist.sh",
    "throughput": "benchmarks/throughput.py",
    "model_sizes": "benchmarks/model_sizes.py",
}

SECTIONS = {  # first matching prefix -> the index section a page is listed under
    "solver": "Samplers",
    "loop_overhead": "Samplers",
    "fast_solvers": "Samplers",
    "stochastic": "Samplers",
    "per_sample_ode": "Likelihood and per-sample ODE solves",
    "likelihood": "Likelihood and per-sample ODE solves",
    "inpainting": "Conditional generation",
    "colorization": "Conditional generation",
    "guidance": "Conditional generation",
    "fid_sweep": "FID against NFE on digits",
    "fashion_mnist": "Fashion-MNIST",
    "throughput": "Throughput and model sizes",
    "model_sizes": "Throughput and model sizes",
}


def _sources() -> list[Path]:
    """The stored tables: every .md, and every .csv that has no .md beside it; sample point folders excluded."""
    found = []
    for path in sorted(RESULTS.rglob("*")):
        if "points" in path.relative_to(RESULTS).parts or not path.is_file():
            continue
        if path.suffix == ".md" or (path.suffix == ".csv" and not path.with_suffix(".md").exists()):
            found.append(path)
    return found


def _slug(path: Path) -> str:
    return "-".join(path.relative_to(RESULTS).with_suffix("").parts)


def _lookup(table: dict[str, str], name: str, default: str) -> str:
    keys = sorted((k for k in table if name.startswith(k)), key=len, reverse=True)
    return table[keys[0]] if keys else default


def _csv_table(path: Path) -> str:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return "(empty)\n"
    head, body = rows[0], rows[1:]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def _page(path: Path, slug: str) -> tuple[str, str]:
    """(title, markdown) of the page for one stored result."""
    rel = path.relative_to(ROOT).as_posix()
    text = path.read_text() if path.suffix == ".md" else _csv_table(path)
    lines = text.splitlines()
    title = path.relative_to(RESULTS).as_posix()
    if lines and lines[0].startswith("# "):
        title, lines = lines[0][2:].strip(), lines[1:]
    body = "\n".join(("#" + ln) if ln.startswith("#") else ln for ln in lines)  # the page title is the only h1
    script = _lookup(SCRIPTS, _slug(path), "")
    parts = [f"# {title}\n", f"Stored result: `{rel}`" + (f", written by `{script}`." if script else ".") + "\n"]
    plot = path.with_suffix(".png")
    if plot.exists():
        shutil.copyfile(plot, OUT / f"{slug}.png")
        parts.append(f"![{title}]({slug}.png)\n")
    parts.append(body.strip() + "\n")
    return title, "\n".join(parts)


def generate() -> list[Path]:
    """Write the pages and the index into docs/benchmarks/; returns the pages written."""
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    sections: dict[str, list[str]] = {}
    written = []
    for path in _sources():
        slug = _slug(path)
        title, text = _page(path, slug)
        (OUT / f"{slug}.md").write_text(text)
        written.append(OUT / f"{slug}.md")
        section = _lookup(SECTIONS, slug, "Other")
        sections.setdefault(section, []).append(f"- [`{path.relative_to(RESULTS).as_posix()}`]({slug}.md): {title}")
    index = [
        "# Benchmark results\n",
        "Every table the benchmark scripts stored under `benchmarks/results/`, one page each, generated at build time "
        "(`docs/gen_benchmarks.py`). Each page names the script that writes it; the machine, thread count and load "
        "are recorded in the table's own header. What the numbers mean and which settings they led to is in the "
        "[benchmarks guide](../guides/benchmarks.md).\n",
    ]
    for section in sorted(sections):
        index += [f"## {section}\n", "\n".join(sections[section]) + "\n"]
    (OUT / "index.md").write_text("\n".join(index))
    return written


if __name__ == "__main__":
    pages = generate()
    print(f"wrote {len(pages)} benchmark pages and the index into {OUT.relative_to(ROOT)}/")
