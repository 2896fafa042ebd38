"""mkdocs hooks (mkdocs.yml ``hooks:``): generate the benchmark pages from benchmarks/results/ before every build."""

import importlib.util
from pathlib import Path


def on_pre_build(config, **kwargs) -> None:
    spec = importlib.util.spec_from_file_location("gen_benchmarks", Path(__file__).with_name("gen_benchmarks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate()
