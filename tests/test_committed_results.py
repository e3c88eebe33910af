"""The committed results are what the code makes of them, and the documents quote them.

Every committed table is regenerated from its records and must match byte for byte; every
``mean ± std`` and every table row the README and docs quote must stand in a committed
table, so a number cannot outlive the records it came from."""

import re
import shutil
from pathlib import Path

import pytest

from dfqbench.plan import Cell
from dfqbench.records import RecordStore

ROOT = Path(__file__).parent.parent
COMMITTED = sorted((ROOT / "results").glob("**/records.jsonl"))
#: folders given to ``--results`` (each holds ``<suite>/records.jsonl``)
FOLDERS = sorted({path.parent.parent for path in COMMITTED})
#: what quotes committed numbers (docs/real-suites.md shows the CIFAR table's layout with made-up numbers)
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "vit.md", *sorted((ROOT / "results").glob("**/README.md"))]
MEAN_STD = re.compile(r"\d+\.\d+ ± \d+\.\d+")


def test_committed_records_keep_their_keys():
    """Fields added to the cell since (precision, channels_last) leave old keys unchanged, so
    --resume still finds every committed result."""
    assert COMMITTED
    for path in COMMITTED:
        for record in RecordStore(path).read():
            assert Cell(**record["cell"]).key == record["key"], path


def test_committed_records_name_one_teacher_per_model():
    """Every committed record says which weights it was made with, and a model's records
    agree (the digits teachers are trained once, deterministically, and cached)."""
    digests: dict[str, set] = {}
    for path in COMMITTED:
        for record in RecordStore(path).read():
            assert len(record["teacher_sha256"]) == 64, path
            digests.setdefault(record["cell"]["model"], set()).add(record["teacher_sha256"])
    assert digests and all(len(d) == 1 for d in digests.values()), digests


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: str(f.relative_to(ROOT)))
def test_committed_tables_are_regenerated_from_the_records(cli, folder, tmp_path):
    suites = [records.parent for records in folder.glob("*/records.jsonl")]
    tables = sorted(p for suite in suites for p in suite.iterdir() if p.is_file() and p.name != "records.jsonl")
    options = []
    for baseline in sorted({p.stem.removeprefix("versus-") for p in tables if p.name.startswith("versus-")}):
        options += ["--versus", baseline]
    if any(p.name.startswith("compare.") for p in tables):
        options += ["--compare", "published"]
    for suite in suites:
        (tmp_path / suite.name).mkdir()
        shutil.copy(suite / "records.jsonl", tmp_path / suite.name)
    res = cli("table", "--results", str(tmp_path), *options)
    assert res.code == 0, res.err
    if (folder / "leaderboard.md").exists():
        tables.append(folder / "leaderboard.md")
        assert cli("leaderboard", "--results", str(tmp_path)).code == 0
    assert tables
    for committed in tables:
        regenerated = tmp_path / committed.relative_to(folder)
        assert regenerated.read_bytes() == committed.read_bytes(), f"{committed} differs from `dfqbench table`'s; regenerate it"


def committed_tables() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "results").glob("**/*.md")) if p.name != "README.md")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_quoted_numbers_stand_in_committed_tables(document):
    tables = committed_tables()
    text = document.read_text()
    quoted = MEAN_STD.findall(text)
    assert [n for n in quoted if n not in tables] == [], f"{document} quotes numbers that no committed table holds"
    rows = [line for line in text.splitlines() if line.startswith("| Digits")]
    lines = set(tables.splitlines())
    assert [r for r in rows if r not in lines] == [], f"{document} quotes table rows that no committed table holds"
