"""The docs are entered from one index: README opens with its two commands and links docs/README.md
next; the index links every page under docs/; the architecture table names modules that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_readme_opens_with_its_commands_and_links_the_index_next():
    text = (ROOT / "README.md").read_text()
    assert text.startswith("# infoflow-jax\n\n```\npip install -e . && infoflow verify\n")
    after_block = text.split("```", 2)[2]
    first_paragraph = after_block.strip().split("\n\n")[0]
    assert "(docs/README.md)" in first_paragraph


def test_the_index_links_every_page_and_only_pages_that_exist():
    index = (DOCS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w./-]+\.md)\)", index))
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert pages - linked == set()
    assert {name for name in linked if not (DOCS / name).resolve().is_file()} == set()


def test_no_work_in_progress_folder_in_the_docs():
    assert not (DOCS / "wip").exists()


def test_every_module_the_one_place_table_names_exists():
    text = (DOCS / "architecture.md").read_text()
    table = text.split("## Where each concern lives", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`((?:core|verification|sweep|training|infoflow|cli)/\w+\.py)`", table))
    assert named, "the table names no module"
    assert sorted(m for m in named if not (ROOT / "infoflow_jax" / m).is_file()) == []
