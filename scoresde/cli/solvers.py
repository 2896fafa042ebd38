"""``python -m scoresde.cli.solvers`` (or ``python -m scoresde.sample list_solvers=true``): every solver, its options
and their defaults, as the command line (``solver=NAME solver.OPTION=VALUE``) and the library
(``scoresde.sample(..., solver=NAME, OPTION=VALUE)``) take them."""

from __future__ import annotations

import inspect
from pathlib import Path

from omegaconf import OmegaConf

from ..solvers import SOLVERS
from ._runtime import config_dir


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _options(cls) -> list[str]:
    """``name=default`` for every constructor argument of a solver class (``name`` alone when it has no default)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # fmt: skip


def _preset_comment(path: Path) -> str:
    lines = [ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#")]
    return lines[0] if lines else ""


def describe_solvers() -> str:
    """The listing as text: the command line's presets (conf/solver/*.yaml), then the library's solver names."""
    out = ["Command line: solver=NAME, then solver.OPTION=VALUE to change an option (conf/solver/NAME.yaml)", ""]
    presets = sorted((config_dir() / "solver").glob("*.yaml"))
    width = max(len(p.stem) for p in presets) + 2
    for path in presets:
        settings = OmegaConf.to_container(OmegaConf.load(path))
        target = str(settings.pop("_target_", ""))
        out.append(f"  {path.stem:<{width}}{_preset_comment(path)}")
        values = " ".join(f"{k}={'null' if v is None else v}" for k, v in settings.items())
        out.append(f"  {'':<{width}}{target.rsplit('.', 1)[-1]}" + (f": {values}" if values else ""))
    out += ["", "Library: scoresde.sample(sde, score_fn, shape, solver=NAME, OPTION=VALUE, ...)", ""]
    width = max(len(name) for name in SOLVERS) + 2
    for name, cls in SOLVERS.items():
        out.append(f"  {name:<{width}}{cls.__name__}: {_summary(cls)}")
        out.append(f"  {'':<{width}}options: {', '.join(_options(cls)) or '(none)'}")
    return "\n".join(out)


def main() -> None:
    """Print :func:`describe_solvers`."""
    print(describe_solvers())


if __name__ == "__main__":
    main()
