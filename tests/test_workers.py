"""The worker processes of ``--jobs N``: results, errors and deaths reach the parent, and no
worker outlives its ``with`` block (a pool that hangs on any of these hangs a whole run)."""

import multiprocessing
import os

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
        now = {p.name: p.pid for p in children_left()}  # both still there, b a new process
        assert now.keys() == first.keys() and now["dfqbench worker on a"] == first["dfqbench worker on a"]
        assert now["dfqbench worker on b"] != first["dfqbench worker on b"]
        assert sorted(value for _, (_, value) in workers.map_unordered(add, [40, 41, 42])) == [50, 51, 52]  # and the pool still works
    died = results.pop("die")
    assert isinstance(died, WorkerDied) and str(died) == "the process died (exit code 3)"
    assert sorted(value for _, value in results.values()) == [11, *range(12, 40)]  # the other units all ran
    assert children_left() == []


def test_a_worker_killed_by_a_signal_says_which():
    assert str(WorkerDied(-9)) == "the process died (killed by SIGKILL)"
