"""The committed results are what the code makes of them, and the documents quote them.

Every committed table is regenerated from its records and must match byte for byte; every
``mean ± std`` and every table row the README and docs quote must stand in a committed
table, so a number cannot outlive the records it came from; and every ``dfqbench run``
command the documents give is still accepted and, run on the committed digits results, finds
a record of every cell it plans: the documented commands are the ones that made them."""

import importlib.util
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dfqbench.plan import Cell
from dfqbench.records import RecordStore

ROOT = Path(__file__).parent.parent
COMMITTED = sorted((ROOT / "results").glob("**/records.jsonl"))
#: folders given to ``--results`` (each holds ``<suite>/records.jsonl``)
FOLDERS = sorted({path.parent.parent for path in COMMITTED})
#: what tells a user how to run dfqbench
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "results").glob("**/README.md"))]
#: what quotes committed numbers (docs/real-suites.md shows the CIFAR table's layout with made-up numbers)
DOCUMENTS = [doc for doc in GUIDES if doc.name != "real-suites.md"]
MEAN_STD = re.compile(r"(?<![\d.])\d+\.\d+ ± \d+\.\d+(?!\d)")


def test_committed_records_keep_their_keys():
    """Fields added to the cell since (precision, channels_last) leave old keys unchanged, so
    --resume still finds every committed result."""
    assert COMMITTED
    for path in COMMITTED:
        for record in RecordStore(path).read():
            assert Cell(**record["cell"]).key == record["key"], path


def test_committed_records_were_made_with_the_shipped_teachers():
    """Every committed record names the weights it was made with: the teacher dfqbench
    ships, which every machine loads, so anyone can add records to these tables."""
    from safetensors import safe_open

    import dfqbench_suites.digits as zoo

    shipped = {}
    for name in zoo.ARCHITECTURES:
        with safe_open(zoo.teacher_file(name), framework="pt") as f:
            shipped[name] = f.metadata()["teacher_sha256"]
    made = {(record["cell"]["model"], record["teacher_sha256"]) for path in COMMITTED for record in RecordStore(path).read()}
    assert made and made <= set(shipped.items()), made - set(shipped.items())


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: str(f.relative_to(ROOT)))
def test_committed_tables_are_regenerated_from_the_records(cli, folder, tmp_path):
    suites = [records.parent for records in folder.glob("*/records.jsonl")]
    tables = sorted(p for suite in suites for p in suite.iterdir() if p.is_file() and p.name != "records.jsonl")
    options = []
    for versus in (p for p in tables if p.name.startswith("versus-") and p.suffix == ".csv"):
        # the baseline is the method with nothing paired in any row (the file name is a sanitised
        # form of it); another method is unpaired only in rows where the baseline did not run
        unpaired = pd.read_csv(versus).groupby("method")["n_paired"].agg(lambda n: n.isna().all())
        (baseline,) = unpaired[unpaired].index
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
    held = set(MEAN_STD.findall(tables))
    assert [n for n in MEAN_STD.findall(text) if n not in held] == [], f"{document} quotes numbers that no committed table holds"
    rows = [line for line in text.splitlines() if line.startswith("| Digits")]
    lines = set(tables.splitlines())
    assert [r for r in rows if r not in lines] == [], f"{document} quotes table rows that no committed table holds"


def code_lines(text: str) -> list[str]:
    """The lines of a guide's code blocks (continuations joined), then its inline code spans
    (a span that wraps over lines made one line)."""
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return lines + [" ".join(code.split()) for code in re.findall(r"`([^`]*)`", prose)]


def documented_run_commands():
    """``(document, arguments)`` of every ``dfqbench run`` in a code block or inline code of
    the guides, the synopsis left out."""
    for document in GUIDES:
        for line in code_lines(document.read_text()):
            for part in re.split(r"&&|;", line.split("#")[0]):
                found = re.search(r"dfqbench run (.+)", part)
                if found and not found.group(1).lstrip().startswith("["):
                    yield document, found.group(1).strip()


COMMANDS = list(documented_run_commands())


def test_the_documents_give_run_commands():
    assert len(COMMANDS) > 20 and all(doc in {d for d, _ in COMMANDS} for doc in DOCUMENTS)


@pytest.mark.parametrize("document, command", COMMANDS, ids=[f"{d.relative_to(ROOT)}:{i}" for i, (d, _) in enumerate(COMMANDS)])
def test_documented_run_commands_are_accepted(cli, example_plugin, document, command, tmp_path):
    """Checked with ``--dry-run`` (arguments, plan, ``--set`` values against the configs):
    the commands written for GPU machines with weight files run here on the CPU, with an
    empty file in place of each weights file; the README's plugin example is installed."""
    args = ["cpu" if arg == "cuda" else arg for arg in shlex.split(command)]
    for i, arg in enumerate(args[:-1]):
        if arg == "--weights":
            model, path = args[i + 1].split("=", 1)
            (tmp_path / Path(path).name).touch()
            args[i + 1] = f"{model}={tmp_path / Path(path).name}"
    res = cli("run", *args, "--dry-run", "--results", str(tmp_path / "results"))
    assert res.code == 0, f"{document.relative_to(ROOT)}: dfqbench run {command}\n{res.err}"


TUNE_SCRIPT = ROOT / "bench" / "tune_reduced_budget.py"


def documented_tune_commands():
    """``(document, arguments)`` of every ``bench/tune_reduced_budget.py`` in a code block or
    inline code of the guides."""
    script = "bench/tune_reduced_budget.py "
    for document in GUIDES:
        for line in code_lines(document.read_text()):
            if script in line:
                yield document, line.split(script, 1)[1].strip()


TUNE_COMMANDS = list(documented_tune_commands())


@pytest.mark.parametrize("document, command", TUNE_COMMANDS, ids=[f"{d.relative_to(ROOT)}:{i}" for i, (d, _) in enumerate(TUNE_COMMANDS)])
def test_documented_budget_tuning_commands_are_accepted(document, command, monkeypatch):
    """The candidates the README's budget tables come from still name fields and values the
    configs accept (``--check`` builds every plan and runs nothing)."""
    monkeypatch.setattr(sys, "argv", [str(TUNE_SCRIPT), *shlex.split(command), "--check"])
    try:
        runpy.run_path(str(TUNE_SCRIPT), run_name="__main__")
    except SystemExit as exc:
        pytest.fail(f"{document.relative_to(ROOT)}: bench/tune_reduced_budget.py {command} exits {exc.code}")


def test_the_documents_give_budget_tuning_commands():
    assert len(TUNE_COMMANDS) >= 10


@pytest.mark.parametrize("args, message", [(["gdfq", "lr_x=1"], "unknown field 'lr_x' of gdfq"),
                                           (["gdfq", "lr_s=abc"], "gdfq.lr_s: 'abc' is not a finite number"),
                                           (["gdfq", "lr_s=1e-3", "--seeds", "0,a"], "bad --seeds entry 'a'")])  # fmt: skip
def test_the_tuning_script_refuses_a_bad_candidate_in_one_line(args, message, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(TUNE_SCRIPT), *args, "--check"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(TUNE_SCRIPT), run_name="__main__")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err


def _with_committed_results(command: str) -> list[str] | None:
    """The arguments of a documented command of the digits suites, its ``--results`` made
    absolute (default: ``results/``); None for commands of other suites or third-party methods."""
    args = shlex.split(command)
    suite = args[args.index("--suite") + 1] if "--suite" in args else "digits"
    if suite not in ("digits", "digits-teachers") or "uniform-calib" in command or args[:1] == ["--help"]:
        return None
    if "--results" not in args:
        return [*args, "--results", str(ROOT / "results")]
    i = args.index("--results")
    return [*args[:i + 1], str(ROOT / args[i + 1]), *args[i + 2:]]


MADE_THE_RECORDS = [(doc, args) for doc, command in COMMANDS if (args := _with_committed_results(command))]


@pytest.mark.parametrize("document, args", MADE_THE_RECORDS, ids=[f"{d.relative_to(ROOT)}:{i}" for i, (d, _) in enumerate(MADE_THE_RECORDS)])
def test_documented_commands_made_the_committed_records(cli, document, args, monkeypatch):
    """Run as documented (a dry run, on the committed folder), a command finds a record of
    every cell it plans: it is the command that made them, under today's keys. A cell whose
    record diverged would run again (``--resume`` skips cells with an ``ok`` record only)."""
    from dfqbench import executor
    from dfqbench.records import latest

    planned = {}
    real = executor.pending

    def spy(cells, store, *rest, **options):
        planned.update(cells=cells, store=store)
        return real(cells, store, *rest, **options)

    monkeypatch.setattr(executor, "pending", spy)
    res = cli("run", *args, "--dry-run")
    assert res.code == 0, res.err
    status = {r["key"]: r["status"] for r in latest(planned["store"].read())}
    assert planned["cells"] and [c.key for c in planned["cells"] if status.get(c.key) not in ("ok", "diverged")] == []


@pytest.mark.parametrize(
    "method, model, bits",
    [("noise", "resnet20-digits", "3"), ("zeroq", "resnet20-digits", "3"), ("noise", "vit-digits", "3"),
     ("real-kd", "resnet20-digits", "3"),  # GDFQ's training loop without its generator: 20 s
     # the training loops, a minute or less each; GDFQ's three bit-widths trained jointly
     pytest.param("gdfq", "resnet20-digits", "3,4,5", marks=pytest.mark.slow),
     pytest.param("psaqvit-v2", "vit-digits", "4", marks=pytest.mark.slow)],
)
def test_committed_cells_reproduce_to_the_last_digit(cli, method, model, bits, tmp_path):
    """Same seed, same teacher, same arithmetic → same record: a rerun of committed cells
    (seed 0) gives their top-1 exactly. On another CPU than the one the records name, torch's
    kernels may round otherwise and a training run take another path: skipped there, before
    it runs, and under another thread count (``OMP_NUM_THREADS``; the records were made on one)."""
    import torch

    from dfqbench.bits import parse_bits
    from dfqbench.plan import make_plan
    from dfqbench.registry import load_registry
    from dfqbench.seeding import describe_machine

    committed = {r["key"]: r for r in RecordStore(ROOT / "results" / "digits" / "records.jsonl").read()}  # the latest per key
    cells = make_plan(load_registry(), "digits", [method], [model], parse_bits(bits), [0], "default").cells
    here = describe_machine(torch.device("cpu"))
    for cell in cells:
        if committed[cell.key].get("machine") != here:
            pytest.skip(f"the committed records were made on {committed[cell.key].get('machine', 'a machine they do not name')}, this is {here}")
    res = cli("run", "--methods", method, "--models", model, "--bits", bits, "--results", str(tmp_path))
    assert res.code == 0, res.err
    records = RecordStore(tmp_path / "digits" / "records.jsonl").read()
    assert sorted(r["key"] for r in records) == sorted(c.key for c in cells)
    for record in records:
        made = committed[record["key"]]
        assert record["teacher_sha256"] == made["teacher_sha256"] and record["machine"] == made["machine"]
        if record["device"] != made["device"]:  # a training's sums run in another order on another thread count
            pytest.skip(f"the committed records were made on {made['device']}, this run is on {record['device']}")
        assert (record["status"], record["top1"], record["top5"]) == (made["status"], made["top1"], made["top5"])


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_over_teachers_pairs_each_teacher_and_seed_with_the_baseline():
    """Per teacher the mean of its seeds' differences, over all pairs mean ± std and the
    count above; a row that one teacher lacks is left out."""
    tool = _tool("over_teachers")
    rows = []
    for model, k in [("resnet20-digits", 0), ("resnet20-digits-t1", 1), ("resnet20-digits-t2", 2), ("mobilenetv2-digits", 0)]:
        for seed in (0, 1):
            for method, top1 in [("noise", 80.0 + k), ("gdfq", 80.0 + k + [3.0, -1.0][seed] * (k + 1))]:
                rows.append({"suite": "digits" if k == 0 else "digits-teachers", "budget": "default", "quantizer": "gdfq", "data": "",
                             "precision": "fp32", "dataset": "digits", "model": model, "w_bits": 3, "a_bits": 3, "method": method,
                             "model_label": model, "method_label": method, "seed": seed, "status": "ok", "top1": top1, "teacher": f"t{k}"})  # fmt: skip
    (_, noise), (_, gdfq) = tool.over_teachers(pd.DataFrame(rows), "noise").iterrows()  # MobileNetV2 has teacher 0 only
    assert (noise["base"], noise["method"], [noise[k] for k in (0, 1, 2)], noise["mean"]) == ("resnet20-digits", "noise", [80.0, 81.0, 82.0], 81.0)
    deltas = [3.0, -1.0, 6.0, -2.0, 9.0, -3.0]
    assert (gdfq["base"], gdfq["method"], gdfq["pairs"], gdfq["above"]) == ("resnet20-digits", "gdfq", 6, 3)
    assert [gdfq[k] for k in (0, 1, 2)] == [1.0, 2.0, 3.0]
    assert gdfq["mean"] == pytest.approx(sum(deltas) / 6) and gdfq["std"] == pytest.approx(pd.Series(deltas).std())


def test_the_over_teachers_table_is_regenerated_from_the_records(tmp_path):
    tool = _tool("over_teachers")
    committed = tool.OUT
    assert subprocess.run([sys.executable, str(ROOT / "tools" / "over_teachers.py"), "--out", str(tmp_path / "out.md")], capture_output=True).returncode == 0
    assert (tmp_path / "out.md").read_text() == committed.read_text(), f"{committed} differs from tools/over_teachers.py's; regenerate it"


def test_calibrating_on_the_quantized_network_widens_realistic_ranges():
    """What the README's explanation of noise's strength at W3A3 rests on (tools/calibration_ranges.py,
    training split): on the quantized network real images' deep ranges come out wider than on
    the FP network, noise's stay narrower than theirs, ResNet-20 prefers noise's, and shrinking
    real images' ranges helps it: max-based ranges are too wide at 3 bits."""
    rows, shrunk = _tool("calibration_ranges").measure((3, 3))
    row = {(r["model"], r["set"], r["network"]): r for r in rows}
    for model in ("resnet20-digits", "mobilenetv2-digits"):
        assert row[model, "real", "fp"]["last"] == pytest.approx(1.0)
        assert row[model, "real", "quantized"]["last"] > 1.05
        assert row[model, "real", "fp"]["top1"] > row[model, "real", "quantized"]["top1"]
    r20 = "resnet20-digits"
    assert row[r20, "noise", "quantized"]["last"] < 1.0 < row[r20, "real", "quantized"]["last"]
    assert row[r20, "noise", "quantized"]["top1"] > row[r20, "real", "quantized"]["top1"] + 1.0
    assert shrunk[r20][-1] > row[r20, "real", "quantized"]["top1"] + 3.0
