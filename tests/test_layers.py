"""The library's layers: importing scoresde changes no global state, and only scoresde/cli reaches the CLI's tools.

Only ``scoresde/cli`` may import hydra, omegaconf, matplotlib or ``scoresde.cli``; the ``python -m`` launchers
(``scoresde/train.py`` and the like) are two-line shims onto ``scoresde.cli`` that nothing else imports.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import scoresde

PACKAGE = Path(scoresde.__file__).parent
CLI_ONLY = ("scoresde.cli", "hydra", "omegaconf", "matplotlib")
LAUNCHERS = {  # python -m entry points: each only runs scoresde.cli.<name>.main
    "scoresde.train",
    "scoresde.sample",
    "scoresde.schedule",
    "scoresde.train_noisy_classifier",
    "scoresde.likelihood.__main__",
    "scoresde.metrics.train_classifier",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_files() -> dict[str, Path]:
    files = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    return {m: p for m, p in files.items() if not m.startswith("scoresde.cli") and m not in LAUNCHERS}


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports inside functions count too)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _is_cli_only(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in CLI_ONLY)


def test_nothing_outside_cli_imports_the_cli_hydra_or_matplotlib():
    core = _core_files()
    assert "scoresde.sampling" in core and "scoresde.training.trainer" in core  # the scan sees the package
    offenders = {m: sorted(n for n in _imports(p, m) if _is_cli_only(n) or n in LAUNCHERS) for m, p in core.items()}
    assert {m: names for m, names in offenders.items() if names} == {}


def test_the_launchers_only_run_a_cli_main():
    for module in LAUNCHERS:
        path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
        imports = _imports(path, module) - {"__future__", "__future__.annotations"}
        assert imports and all(n.startswith("scoresde.cli.") for n in imports), (module, imports)


PROBE = r"""
import json, random, sys, threading, warnings
import numpy as np, torch  # what torch and numpy set on import is the caller's starting point
import matplotlib  # loaded, but its backend not yet chosen

def state():
    return {
        "backend": dict.__getitem__(matplotlib.rcParams, "backend"),
        "torch_rng": torch.get_rng_state().tolist(),
        "numpy_rng": repr(np.random.get_state()),
        "random": repr(random.getstate()),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "warnings": repr(warnings.filters),
        "dtype": str(torch.get_default_dtype()),
        "python_threads": threading.active_count(),
    }

before = state()
import importlib, scoresde
for name in sys.argv[1:]:
    importlib.import_module(name)
after = state()
print(json.dumps({"changed": sorted(k for k in before if before[k] != after[k]),
                  "loaded": sorted(m for m in sys.modules if m.startswith(("scoresde.cli", "hydra", "omegaconf")))}))
"""


def test_importing_the_library_changes_no_global_state():
    """``import scoresde`` and every core module, in a fresh interpreter: backend, RNGs, threads, warnings untouched."""
    modules = sorted(_core_files())
    out = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"changed": [], "loaded": []}


def test_importing_the_cli_changes_no_global_state_either():
    """The CLI modules load hydra and matplotlib, but draw on Figure objects: no backend is chosen on import."""
    modules = sorted(_module_name(p) for p in (PACKAGE / "cli").rglob("*.py"))
    out = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["changed"] == [] and "scoresde.cli.plotting" in report["loaded"]


def test_importing_scoresde_loads_no_plotting_library():
    code = "import sys, scoresde; print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'hydra')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
