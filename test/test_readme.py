"""The README's interface tables cover every interface file and every field, and its quick start
names the two commands, so the README cannot silently go stale."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
INTERFACES = sorted([*(REPO / "msg").glob("*.msg"), *(REPO / "srv").glob("*.srv"),
                     *(REPO / "action").glob("*.action")])
# "<type> <name>" or "<type> <name> <default>"; constants ("<type> NAME=value") are left out.
FIELD = re.compile(r"^\s*[A-Za-z][\w/]*(?:\[[^\]]*\])?(?:<=\d+)?\s+([a-z]\w*)(?:\s|$)")


def table_row(name: str) -> str | None:
    """The README table row whose first cell is `name`."""
    for line in README.splitlines():
        if re.match(rf"^\|\s*`{re.escape(name)}`\s*\|", line):
            return line
    return None


def field_names(path: Path) -> list[str]:
    names = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0]
        if "=" in line:  # a constant
            continue
        match = FIELD.match(line)
        if match:
            names.append(match.group(1))
    return names


def test_interface_files_exist():
    assert len(INTERFACES) >= 3


@pytest.mark.parametrize("path", INTERFACES, ids=lambda p: p.name)
def test_interface_has_a_table_row_naming_every_field(path):
    row = table_row(path.stem)
    assert row is not None, f"README.md: add a table row for {path.name}"
    fields = field_names(path)
    assert fields, f"no fields parsed from {path.name}"
    # Written `name`, or `name[]` / `name[3]` for arrays.
    missing = [f for f in fields if not re.search(rf"`{f}(?:\[\d*\])?`", row)]
    assert not missing, f"README.md row of {path.stem} does not name: {missing}"


def test_no_table_row_for_a_removed_interface():
    known = {p.stem for p in INTERFACES}
    section = README.split("## Interfaces", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`(\w+)`\s*\|", section, flags=re.MULTILINE)
    assert rows and set(rows) <= known, sorted(set(rows) - known)


def test_quick_start_commands():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for command in ("./run demo", "./run test", "./run exec world-irp --help", "./run bench"):
        assert command in quick, command
