"""run.flush_denormals: every process of a run reads and writes subnormal floats (below
1.2e-38) as zero, because the optimizer moments of dead units decay into that range, where
x86 arithmetic takes a slow path (benchmarks/subnormals.py measures what it costs).

Here: the mode itself (on, off, and the start line), a spawned worker process sets it as
the run says, and a short run is bit for bit the same with and without it, since no value
of a short run is that small: the mode changes nothing else; train() puts the caller's mode
back.
"""

from __future__ import annotations

import multiprocessing

import pytest
import torch

from actorcritic import train
from actorcritic.models.precision import flush_denormals
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.run.workers import child_setup

SUBNORMAL = 1e-39  # float32 keeps it as a subnormal; under FTZ/DAZ it reads as 0


def subnormal_survives() -> bool:
    return float(torch.tensor([SUBNORMAL]) * 1.0) != 0.0


@pytest.fixture(autouse=True)
def ieee_around():
    """Each test starts and ends with IEEE subnormals (an IMPALA actor built in a test's own
    process, as other tests do, sets its run's mode there)."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


def test_the_mode_flushes_subnormals_and_names_itself():
    assert subnormal_survives()
    line = flush_denormals(True)
    if line.startswith("run.flush_denormals=true has no effect"):
        pytest.skip("this CPU cannot flush subnormals")
    assert "subnormal floats flushed to zero" in line
    assert not subnormal_survives()
    assert float(torch.tensor([1e-30]) * 1.0) == pytest.approx(1e-30)  # normal floats stay
    assert flush_denormals(False) is None
    assert subnormal_survives()


def _child_reads_subnormal(flush: bool, out) -> None:
    child_setup("subnormal-check", None, flush)
    out.put(subnormal_survives())


@pytest.mark.parametrize("flush", [True, False])
def test_a_spawned_worker_sets_the_mode_of_its_run(flush):
    """A3C workers, A2C helpers and IMPALA actors are spawned (or forked by a fork server
    that never set the mode): child_setup sets it from the run's config."""
    if flush and not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child_reads_subnormal, args=(flush, out))
    proc.start()
    survives = out.get(timeout=60)
    proc.join(timeout=60)
    assert survives is (not flush)


@pytest.mark.slow
def test_a_short_run_is_the_same_with_and_without_the_mode(tmp_path, capsys):
    """SAC on Pendulum, 600 steps: every parameter, optimizer moment and replay row equal,
    and the start line says which mode ran."""
    sets = ["model.hidden_sizes=[32,32]", "algo.learning_starts=200", "algo.batch_size=32",
            "run.eval_episodes=0", "run.eval_every=0", "run.checkpoint_every=0",
            "run.total_steps=600"]
    runs = {}
    for flush in (True, False):
        train("pendulum-sac", tmp_path / str(flush),
              overrides=sets + [f"run.flush_denormals={str(flush).lower()}"])
        said = capsys.readouterr().out
        assert ("subnormal floats flushed to zero" in said) is flush
        assert subnormal_survives(), "train() put the caller's mode back"
        runs[flush] = load_checkpoint(tmp_path / str(flush) / "checkpoints" /
                                      "final.safetensors").tensors
    assert runs[True].keys() == runs[False].keys()
    for key, value in runs[True].items():
        assert torch.equal(value, runs[False][key]), key
