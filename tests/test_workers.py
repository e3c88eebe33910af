"""The worker processes of ``--jobs N``: results, errors and deaths reach the parent, and no
worker outlives its ``with`` block (a pool that hangs on any of these hangs a whole run)."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from dfqbench.errors import DfqError
from dfqbench.workers import WorkerDied, Workers


def offset(base):  # setup: each worker's state
    if base < 0:
        raise ValueError(f"no offset {base}")
    return base


def add(state, unit):
    if unit == "raise":
        raise KeyError("no such unit")
    if unit == "die":
        os._exit(3)
    if unit == "unpicklable":
        return lambda: None
    return (os.getpid(), state + unit)


def children_left():
    return [p for p in multiprocessing.active_children() if p.name.startswith("dfqbench worker")]


def test_every_unit_comes_back_once_from_both_workers():
    with Workers(offset, [("a", (100,)), ("b", (100,))]) as workers:
        results = [result for _, result in workers.map_unordered(add, range(20))]
    assert sorted(value for _, value in results) == list(range(100, 120))
    assert len({pid for pid, _ in results}) == 2 and os.getpid() not in {pid for pid, _ in results}
    assert children_left() == []


def test_a_failing_setup_is_raised_with_the_first_unit():
    with pytest.raises(ValueError, match="no offset -1"), Workers(offset, [("cuda:99", (-1,))]) as workers:
        list(workers.map_unordered(add, [1, 2]))
    assert children_left() == []


def test_an_exception_of_a_task_is_raised_and_the_workers_are_killed():
    with pytest.raises(KeyError, match="no such unit"), Workers(offset, [("a", (0,)), ("b", (0,))]) as workers:
        list(workers.map_unordered(add, [1, "raise", 2, 3]))
    assert children_left() == []


def test_a_result_that_does_not_pickle_is_an_error_not_a_hang():
    with pytest.raises(DfqError, match="a result did not pickle"), Workers(offset, [("a", (0,))]) as workers:
        list(workers.map_unordered(add, ["unpicklable"]))


def test_a_worker_that_dies_is_replaced_and_its_unit_comes_back_with_why():
    with Workers(offset, [("a", (10,)), ("b", (10,))]) as workers:
        first = {p.name: p.pid for p in children_left()}
        results = dict(workers.map_unordered(add, [1, "die", *range(2, 30)]))
        assert sorted(value for _, (_, value) in workers.map_unordered(add, [40, 41, 42])) == [50, 51, 52]  # the pool still works
        now = {p.name: p.pid for p in children_left()}  # both there again: b started afresh when there was work for it
        assert now.keys() == first.keys() and now["dfqbench worker on a"] == first["dfqbench worker on a"]
        assert now["dfqbench worker on b"] != first["dfqbench worker on b"]
    died = results.pop("die")
    assert isinstance(died, WorkerDied) and str(died) == "the process died (exit code 3)"
    assert sorted(value for _, value in results.values()) == [11, *range(12, 40)]  # the other units all ran
    assert children_left() == []


def test_a_worker_killed_by_a_signal_says_which():
    assert str(WorkerDied(-9)) == "the process died (killed by SIGKILL)"


SLOW_IMPORT = """
import os, time
time.sleep(float(os.environ.get("SLOW_IMPORT_S", "0")))  # as a worker's import of torch takes seconds
def setup():
    return 0
def task(state, unit):
    time.sleep(60)
"""

DRIVER = """
import os, sys
sys.path.insert(0, sys.argv[1])
import slow_import
from dfqbench.workers import Workers
os.environ["SLOW_IMPORT_S"] = "10"  # for the workers only
try:
    with Workers(slow_import.setup, [("a", ()), ("b", ())]) as workers:
        print("started", flush=True)
        list(workers.map_unordered(slow_import.task, [1, 2]))
except KeyboardInterrupt:
    print("the parent stopped its workers", flush=True)
"""


def test_ctrl_c_to_the_process_group_reaches_only_the_parent_even_while_workers_import(tmp_path):
    """A terminal's Ctrl-C goes to every process of the group. A worker still in its
    bootstrap (importing torch) used to print a KeyboardInterrupt traceback of its own."""
    (tmp_path / "slow_import.py").write_text(SLOW_IMPORT)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline() == "started\n"
    time.sleep(1)  # the workers are in their 10-second import
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == "the parent stopped its workers\n"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
