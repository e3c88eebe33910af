"""The record store: append-only, atomic lines, corrupt lines reported precisely."""

import json
import multiprocessing

import pytest

from dfqbench.errors import DfqError
from dfqbench.records import RecordStore


def _writer(path, worker):
    store = RecordStore(path)
    for i in range(50):
        store.append({"key": f"{worker}-{i}", "status": "ok", "cell": {}, "pad": "x" * 5000})


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
    path.write_text(json.dumps({"key": "a", "status": "ok", "cell": {}}) + "\n" + json.dumps({"hello": 1}) + "\n")
    with pytest.raises(DfqError, match="line 2 is not a dfqbench record"):
        RecordStore(path).read()
    path.write_text(json.dumps({"key": "a", "status": "done", "cell": {}}) + "\n")
    with pytest.raises(DfqError, match="line 1 has unknown status 'done'; valid choices: ok, failed, diverged"):
        RecordStore(path).read()


def test_done_cells_are_those_whose_latest_record_is_ok(tmp_path):
    store = RecordStore(tmp_path / "r.jsonl")
    for key, status in [("a", "failed"), ("b", "ok"), ("c", "failed"), ("c", "ok"), ("d", "ok"), ("d", "diverged")]:
        store.append({"key": key, "status": status, "cell": {}})
    assert sorted(store.done()) == ["b", "c"]


def test_non_finite_numbers_are_refused(tmp_path):
    with pytest.raises(ValueError):
        RecordStore(tmp_path / "r.jsonl").append({"key": "a", "status": "ok", "cell": {}, "top1": float("nan")})


def test_checking_writability_leaves_nothing_behind(tmp_path):
    store = RecordStore(tmp_path / "new" / "digits" / "records.jsonl")
    store.check_writable(create=False)  # a dry run
    assert list(tmp_path.iterdir()) == []
    store.check_writable()  # a run: the folder, but no empty records file before its first cell
    assert list((tmp_path / "new" / "digits").iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(DfqError, match="Not a directory"):
        RecordStore(tmp_path / "file" / "digits" / "records.jsonl").check_writable(create=False)


def test_history_moves_to_a_log_file_replaced_by_a_rerun(tmp_path):
    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    store.path.parent.mkdir()
    first = {"key": "k1", "status": "ok", "cell": {}, "history": {"loss": [3.0, 2.0], "acc": [0.5]}}
    store.append(first)
    assert "history" not in first and first["log"] == "logs/k1.json"
    (record,) = store.read()
    assert record["log"] == "logs/k1.json" and store.history(record) == {"loss": [3.0, 2.0], "acc": [0.5]}
    store.append({"key": "k1", "status": "ok", "cell": {}, "history": {"loss": [1.0]}})  # --no-resume
    assert [store.history(r) for r in store.read()] == [{"loss": [1.0]}] * 2
    assert sorted(p.name for p in (tmp_path / "digits" / "logs").iterdir()) == ["k1.json"]  # no temporary left
    store.append({"key": "k2", "status": "failed", "cell": {}, "history": {}})
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
