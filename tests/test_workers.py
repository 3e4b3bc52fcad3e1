"""The supervision every kind of worker shares (run/workers.py): seeds, the error envelope,
restarts and their budget. Real processes are in test_a3c, test_impala, test_ray and
test_contract; here a transport that records what it is asked to do."""

from __future__ import annotations

import pickle
import time

import pytest

from actorcritic.errors import ConfigError, EnvError, NonFiniteError, WorkerFailure
from actorcritic.run.workers import (
    STARTUP_GRACE,
    ErrorReport,
    WorkerPool,
    raise_report,
    worker_seed,
)


class RecordingTransport:
    def __init__(self, count: int):
        self.codes: list[int | None] = [None] * count
        self.log: list[tuple] = []

    def start_worker(self, index: int, seed: int) -> None:
        self.codes[index] = None
        self.log.append(("start", index, seed))

    def stop_worker(self, index: int) -> None:
        self.log.append(("stop", index))

    def exit_code(self, index: int) -> int | None:
        return self.codes[index]


def pool_of(count=2, timeout=5.0, restarts=1, updates=0):
    transport = RecordingTransport(count)
    pool = WorkerPool("test worker", count, transport, timeout, restarts, 7, updates)
    pool.start_all()
    return pool, transport


def test_seeds_differ_per_worker_incarnation_and_resume_point():
    seeds = {worker_seed(1, i, inc, upd) for i in range(8) for inc in range(4)
             for upd in (0, 37)}
    assert len(seeds) == 8 * 4 * 2
    assert worker_seed(1, 0) == 1 + 1000


def test_a_worker_that_exits_is_restarted_with_a_new_seed_until_the_budget_is_spent():
    pool, transport = pool_of(restarts=1)
    first_seed = transport.log[1][2]
    said = []
    transport.codes[1] = -9
    pool.check(say=said.append)
    assert transport.log[2:] == [("stop", 1), ("start", 1, worker_seed(7, 1, 1))]
    assert transport.log[3][2] != first_seed
    assert said == ["test worker 1 exited with code -9: restarting it (1/1 restarts)"]
    transport.codes[0] = 1
    with pytest.raises(WorkerFailure, match=r"test worker 0 exited with code 1; the restart "
                                            r"limit run.max_worker_restarts=1 is used up"):
        pool.check()


def test_silence_counts_after_start_up_and_not_while_busy():
    pool, transport = pool_of(timeout=0.01, restarts=5)
    time.sleep(0.05)
    pool.check()  # nobody has been heard from yet: the start-up grace applies
    assert len(transport.log) == 2 and STARTUP_GRACE > 0.05
    pool.heard_from(0)
    pool.heard_from(1)
    pool.workers[1].busy = True
    time.sleep(0.05)
    pool.check()
    assert transport.log[2:] == [("stop", 0), ("start", 0, worker_seed(7, 0, 1))]
    assert pool.restarts == 1


def test_a_check_is_due_an_interval_after_the_last_one():
    pool, _ = pool_of()
    pool.check()
    assert not pool.check_due(interval=0.05)
    time.sleep(0.06)
    assert pool.check_due(interval=0.05)
    pool.check()
    assert not pool.check_due(interval=0.05)


def test_a_stopped_pool_restarts_nothing():
    pool, transport = pool_of()
    pool.stop_all()
    transport.codes[0] = 0
    pool.check()
    assert pool.restarts == 0


@pytest.mark.parametrize("exc,cls", [(EnvError("the env broke"), EnvError),
                                     (ConfigError("bad"), ConfigError),
                                     (NonFiniteError("NaN in loss"), NonFiniteError)])
def test_user_errors_and_nans_keep_their_class_across_the_envelope(exc, cls):
    try:
        raise exc
    except Exception as caught:
        report = pickle.loads(pickle.dumps(ErrorReport.of("A3C worker 2", caught)))
    assert report.user_error and "raise exc" in report.trace
    with pytest.raises(cls, match=r"^A3C worker 2: "):
        raise_report(report)


def test_other_errors_become_one_worker_failure_line():
    report = ErrorReport.of("IMPALA worker 1", KeyError("obs"), trace="")
    assert not report.user_error
    with pytest.raises(WorkerFailure, match=r"^IMPALA worker 1: KeyError: 'obs'$"):
        raise_report(report)
