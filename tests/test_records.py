"""The record store: append-only, atomic lines, corrupt lines reported precisely."""

import json
import multiprocessing
import re

import pytest

from dfqbench.errors import DfqError
from dfqbench.records import RecordStore

#: the smallest cell a record may have
CELL = {"suite": "digits", "dataset": "digits", "model": "m", "method": "noise", "budget": "smoke", "w_bits": 4, "a_bits": 4,
        "seed": 0, "quantizer": {}, "config": {}}


def _writer(path, worker):
    store = RecordStore(path)
    for i in range(50):
        store.append({"key": f"{worker}-{i}", "status": "ok", "top1": 90.0, "cell": CELL, "pad": "x" * 5000})


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "records.jsonl"
    procs = [multiprocessing.get_context("fork").Process(target=_writer, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    recs = RecordStore(path).read()
    assert len(recs) == 200 and len({r["key"] for r in recs}) == 200


def test_corrupt_and_foreign_lines(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"key": "a", "status": "ok", "top1": 90.0, "cell": CELL}) + "\n" + json.dumps({"hello": 1}) + "\n")
    with pytest.raises(DfqError, match="line 2 is not a dfqbench record"):
        RecordStore(path).read()
    path.write_text(json.dumps({"key": "a", "status": "done", "cell": CELL}) + "\n")
    with pytest.raises(DfqError, match="line 1 has unknown status 'done'; valid choices: ok, failed, diverged"):
        RecordStore(path).read()


def test_done_cells_are_those_whose_latest_record_is_ok(tmp_path):
    store = RecordStore(tmp_path / "r.jsonl")
    for key, status in [("a", "failed"), ("b", "ok"), ("c", "failed"), ("c", "ok"), ("d", "ok"), ("d", "diverged")]:
        store.append({"key": key, "status": status, "cell": CELL, "top1": 90.0})
    assert sorted(store.done()) == ["b", "c"]


def test_non_finite_numbers_are_refused(tmp_path):
    with pytest.raises(ValueError):
        RecordStore(tmp_path / "r.jsonl").append({"key": "a", "status": "ok", "top1": 90.0, "cell": CELL, "top1": float("nan")})


def test_checking_writability_leaves_nothing_behind(tmp_path):
    store = RecordStore(tmp_path / "new" / "digits" / "records.jsonl")
    store.check_writable(create=False)  # a dry run
    assert list(tmp_path.iterdir()) == []
    store.check_writable()  # a run: the folder, but no empty records file before its first cell
    assert list((tmp_path / "new" / "digits").iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(DfqError, match="Not a directory"):
        RecordStore(tmp_path / "file" / "digits" / "records.jsonl").check_writable(create=False)


def test_a_records_link_that_leads_nowhere_writable_is_refused_before_any_work(tmp_path):
    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    store.path.parent.mkdir()
    store.path.symlink_to(store.path.name)  # a link to itself
    with pytest.raises(DfqError, match="cannot write records to .*records.jsonl: Too many levels of symbolic links"):
        store.check_writable()
    store.path.unlink()
    store.path.symlink_to(tmp_path / "gone" / "records.jsonl")  # into a folder that is not there
    with pytest.raises(DfqError, match="cannot write records to .*: No such file or directory"):
        store.check_writable(create=False)


def test_a_dry_run_creates_nothing_where_a_dangling_records_link_leads(tmp_path):
    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    (tmp_path / "elsewhere").mkdir()
    store.path.parent.mkdir()
    store.path.symlink_to(tmp_path / "elsewhere" / "records.jsonl")
    store.check_writable(create=False)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_history_moves_to_a_log_file_replaced_by_a_rerun(tmp_path):
    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    store.path.parent.mkdir()
    first = {"key": "k1", "status": "ok", "top1": 90.0, "cell": CELL, "history": {"loss": [3.0, 2.0], "acc": [0.5]}}
    store.append(first)
    assert "history" not in first and first["log"] == "logs/k1.json"
    (record,) = store.read()
    assert record["log"] == "logs/k1.json" and store.history(record) == {"loss": [3.0, 2.0], "acc": [0.5]}
    store.append({"key": "k1", "status": "ok", "top1": 90.0, "cell": CELL, "history": {"loss": [1.0]}})  # --no-resume
    assert [store.history(r) for r in store.read()] == [{"loss": [1.0]}] * 2
    assert sorted(p.name for p in (tmp_path / "digits" / "logs").iterdir()) == ["k1.json"]  # no temporary left
    store.append({"key": "k2", "status": "failed", "cell": CELL, "history": {}})
    assert "log" not in store.read()[-1] and store.history(store.read()[-1]) == {}
    (tmp_path / "digits" / "logs" / "k1.json").write_text("{")
    with pytest.raises(DfqError, match="cannot read the log of cell k1"):
        store.history(record)


def test_records_name_the_commit_of_a_checkout_and_whether_its_source_changed(tmp_path):
    import subprocess

    from dfqbench.source import revision

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True).stdout.strip()

    assert revision(tmp_path) is None  # not a checkout: a regular install
    git("init", "-q")
    (tmp_path / "dfqbench").mkdir()
    (tmp_path / "dfqbench" / "a.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")[:12]
    assert revision.__wrapped__(tmp_path) == head
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "records.jsonl").write_text("{}\n")  # what a run writes is not the code
    assert revision.__wrapped__(tmp_path) == head
    (tmp_path / "dfqbench" / "a.py").write_text("x = 2\n")
    assert revision.__wrapped__(tmp_path) == head + "+dirty"


def test_an_append_after_a_missing_final_newline_keeps_both_records(tmp_path):
    """An editor that drops the file's last newline must not make the next record share its line."""
    store = RecordStore(tmp_path / "r.jsonl")
    store.append({"key": "a", "status": "ok", "top1": 90.0, "cell": CELL})
    store.path.write_bytes(store.path.read_bytes().rstrip(b"\n"))
    store.append({"key": "b", "status": "ok", "top1": 90.0, "cell": CELL})
    assert [r["key"] for r in store.read()] == ["a", "b"]
    assert store.path.read_bytes().count(b"\n") == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["cell"].pop("method"), "line 1 has a cell without 'method'; fix or delete that line"),
        (lambda r: r["cell"].update(w_bits="4"), "line 1 has cell w_bits '4', not an integer; fix or delete that line"),
        (lambda r: r["cell"].update(seed=True), "line 1 has cell seed True, not an integer"),
        (lambda r: r["cell"].update(quantizer=None), "line 1 has cell quantizer None, not a JSON object"),
        (lambda r: r.update(labels=None), "line 1 has labels None, not a JSON object"),
        (lambda r: r.update(metrics=[1]), "line 1 has metrics [1], not a JSON object"),
        (lambda r: r["cell"].update(precision=16), "line 1 has cell precision 16, not a string"),
        # nested fields that tables, show and resuming read, checked before any of them runs
        (lambda r: r["cell"].update(overrides={"adadfq": 5}), "line 1 has cell overrides adadfq 5, not a JSON object;"),
        (lambda r: r["cell"]["quantizer"].update(name=[5]), "line 1 has cell quantizer name [5], not a string;"),
        (lambda r: r.update(versions=[1]), "line 1 has versions [1], not a JSON object;"),
        (lambda r: r.update(versions={"plugin": "x"}), "line 1 has versions plugin 'x', not a JSON object of strings or nulls;"),
        (lambda r: r.update(versions={"plugin": {"version": [1]}}), "line 1 has versions plugin version [1], not a string or null;"),
        (lambda r: r.update(labels={"year": "x"}), "line 1 has labels year 'x', not an integer;"),
        (lambda r: r.update(labels={"year": None}), "line 1 has labels year None, not an integer;"),
        (lambda r: r.update(machine="x"), "line 1 has machine 'x', not a JSON object of strings;"),
        (lambda r: r.update(error="boom"), "line 1 has error 'boom', not a JSON object of strings or null;"),
        (lambda r: r.update(metrics={"a": 5}), "line 1 has metrics a 5, not a JSON object;"),
        (lambda r: r.update(metrics={"a": {"last": "x", "count": 1}}), "line 1 has metrics a last 'x', not a finite number;"),
        (lambda r: r.update(log=5), "line 1 has log 5, not a string;"),
        (lambda r: r.update(joint={"keys": 5}), "line 1 has joint keys 5, not a list of strings;"),
        (lambda r: r.update(joint={"keys": ["a", 7]}), "line 1 has joint keys [1] 7, not a string;"),
        (lambda r: r.update(versions={"source": None, "plugin": {"version": None}}, error=None), None),  # as written outside a checkout
        (lambda r: r.update(schema=2), "line 1 has record schema 2, this dfqbench reads schema 1; use the dfqbench version that wrote it"),
        # another schema is named first: its other fields may differ in any way
        (lambda r: r.update(schema=2, cell={"suite": "x"}), "line 1 has record schema 2, this dfqbench reads schema 1"),
    ],
)
def test_a_record_whose_fields_lack_what_tables_read_is_refused_in_one_line(tmp_path, change, message):
    record = {"key": "a", "status": "ok", "top1": 90.0, "cell": json.loads(json.dumps(CELL)), "schema": 1}
    change(record)
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record) + "\n")
    if message is None:
        assert RecordStore(path).read() == [record]
        return
    with pytest.raises(DfqError, match=re.escape(message)):
        RecordStore(path).read()


def test_a_line_nested_beyond_recursion_is_one_error(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DfqError, match="line 1 is nested too deeply"):
        RecordStore(path).read()


def test_a_log_that_cannot_be_written_keeps_the_record(tmp_path):
    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    (tmp_path / "digits" / "logs" / "k1.json").mkdir(parents=True)  # in the way of the log
    store.append({"key": "k1", "status": "ok", "top1": 90.0, "fp_top1": 95.0, "cell": CELL, "history": {"loss": [1.0]}})
    (record,) = store.read()
    assert "log" not in record and record["log_error"].startswith("IsADirectoryError")
    from dfqbench.show import details

    assert "its metric log could not be written (IsADirectoryError" in details({**record, "cell": {**CELL, "quantizer": {}}}, {})
    assert [p.name for p in (tmp_path / "digits" / "logs").iterdir()] == ["k1.json"]  # no temporary left behind
    (tmp_path / "digits" / "logs" / "k1.json").rmdir()
    (tmp_path / "digits" / "logs").rmdir()
    (tmp_path / "digits" / "logs").write_text("")
    with pytest.raises(DfqError, match="cannot write metric logs to .*logs: Not a directory; it must be a writable folder"):
        store.check_writable()
    (tmp_path / "digits" / "logs").unlink()
    (tmp_path / "digits" / "logs").mkdir()
    (tmp_path / "digits" / "logs" / "k1.json").write_text("[]")
    with pytest.raises(DfqError, match="cannot read the log of cell k1 .*: list indices"):
        store.history({"key": "k1", "log": "logs/k1.json"})
    for bad in ('{"history": []}', '{"history": {"a": ["x", null]}}', '{"history": {"a": [{}]}}'):
        (tmp_path / "digits" / "logs" / "k1.json").write_text(bad)
        with pytest.raises(DfqError, match="its history is not a name → list of numbers"):
            store.history({"key": "k1", "log": "logs/k1.json"})


def test_show_names_a_number_the_record_lacks():
    from dfqbench.show import details

    record = {"key": "k1", "status": "ok", "top1": 90.0, "fp_top1": None, "wall_time_s": None, "cell": CELL}
    assert "status ok · top-1 90.00 (FP ?) · ? s on ?" in details(record, {})


@pytest.mark.parametrize("failure", ["full disk", "short write, then a size limit", "and the cut fails"])
def test_a_record_cut_short_by_the_disk_leaves_the_file_as_it_was(tmp_path, monkeypatch, failure):
    """Half a line would make every later command refuse the file; the error names the
    cell, its result and the disk's own reason, and the records before it stay readable."""
    import errno

    import dfqbench.records as records

    store = RecordStore(tmp_path / "r.jsonl")
    store.append({"key": "a", "status": "ok", "top1": 90.0, "cell": CELL})
    before = store.path.read_bytes()
    real, calls = records.os.write, []

    def refusing(fd, data):  # half of the line reaches the disk
        calls.append(len(data))
        if len(calls) == 1 and failure.startswith("short"):
            return real(fd, bytes(data[: len(data) // 2]))
        real(fd, bytes(data[: len(data) // 2]))
        raise OSError(*((errno.EFBIG, "File too large") if failure.startswith("short") else (errno.ENOSPC, "No space left on device")))

    monkeypatch.setattr(records.os, "write", refusing)
    if failure == "and the cut fails":
        monkeypatch.setattr(records.os, "ftruncate", lambda fd, size: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
    cell = {**CELL, "method": "gdfq", "model": "resnet20-digits", "w_bits": 3, "a_bits": 3, "seed": 2}
    with pytest.raises(DfqError) as exc:
        store.append({"key": "b", "status": "ok", "top1": 87.654, "cell": cell})
    head = f"cannot append the record of gdfq · resnet20-digits · 3w3a · seed 2 (top-1 87.65) to {store.path}: "
    if failure == "and the cut fails":
        assert str(exc.value) == head + ("No space left on device; and cutting the partial line off failed too (Input/output error): "
                                         "delete the file's last line")  # fmt: skip
        return
    reason = "File too large" if failure.startswith("short") else "No space left on device"
    assert str(exc.value) == head + f"{reason}; the file is as it was, so that cell runs again"
    assert store.path.read_bytes() == before and [r["key"] for r in store.read()] == ["a"]


def test_a_training_whose_record_the_disk_refuses_names_the_rest_of_it():
    from dfqbench.executor import append_training

    class FullStore:
        def append(self, record):
            raise DfqError(f"cannot append the record of {record['key']}")

    made = [{"key": k, "status": s, "top1": t, "cell": {**CELL, "w_bits": b, "a_bits": b}}
            for k, b, s, t in [("a", 3, "ok", 80.0), ("b", 4, "ok", 94.666), ("c", 5, "diverged", None)]]  # fmt: skip
    with pytest.raises(DfqError) as exc:
        append_training(FullStore(), made)
    assert str(exc.value) == "cannot append the record of a; nor were the records of the rest of its joint training (4w4a top-1 94.67, 5w5a diverged)"
    with pytest.raises(DfqError, match="^cannot append the record of c$"):
        append_training(FullStore(), made[2:])


def test_a_log_cut_short_by_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    import errno

    from pathlib import Path

    real = Path.write_text

    def full(self, text, *args, **kwargs):  # half of it reaches the disk
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    store.check_writable()
    monkeypatch.setattr(Path, "write_text", full)
    store.append({"key": "k1", "status": "ok", "top1": 90.0, "cell": CELL, "history": {"loss": [1.0]}})
    (record,) = store.read()
    assert record["log_error"] == f"OSError: [Errno 28] No space left on device: '{tmp_path / 'digits' / 'logs' / 'k1.json'}'"
    assert list((tmp_path / "digits" / "logs").iterdir()) == []
