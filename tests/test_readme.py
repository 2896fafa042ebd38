"""The README is a short front page whose links and commands stay true; the docs' benchmark pages cover every result."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_is_a_short_front_page():
    assert len(README.splitlines()) <= 200


def test_every_relative_link_of_the_readme_exists():
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", README) if "://" not in t]
    assert targets and all((ROOT / t).exists() for t in targets), [t for t in targets if not (ROOT / t).exists()]


def test_the_readme_test_command_is_the_one_ci_runs():
    command = (
        "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[test]' && .venv/bin/python -m pytest"
    )
    assert command in (ROOT / ".ci" / "run").read_text()
    assert command.replace(" -q", "") in README


def test_every_guide_in_the_docs_folder_is_reachable_from_the_nav_or_marked_for_the_lead():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in sorted((ROOT / "docs" / "guides").glob("*.md")):
        assert f"guides/{page.name}" in nav, f"docs/guides/{page.name} is in no nav entry of mkdocs.yml"
