"""The one training loop's own contract, on a real session and real checkpoints: the
sampler is stopped before the final checkpoint, an empty item (nothing arrived before a stop)
is not an update, the learner's lock is held while a checkpoint copies the tensors, and a
model snapshot replaces the live parameters in the file (A3C's best checkpoint)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from actorcritic.config import load_config
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.run.loop import Collected, run_loop
from actorcritic.run.session import RunSession


class CountingSampler:
    """Yields `items` one at a time (each a list of 8 steps and one update), then empty
    items once the run is told to stop; records the order of what the loop asked."""

    def __init__(self, session: RunSession, items: int):
        self.session, self.left, self.calls = session, items, []

    def next(self, log_now: bool) -> Collected:
        if self.left == 0:
            self.session.stop_requested = "SIGINT"
            return Collected(0, None, updates=0)
        self.left -= 1
        return Collected(8, None)

    def publish(self, version: int, model: nn.Module) -> None:
        self.calls.append(("publish", version))

    def add_state(self, tensors: dict, meta: dict) -> None:
        meta["sampler_saw"] = len(self.calls)

    def stop(self) -> None:
        self.calls.append(("stop",))

    def close(self) -> None:
        self.calls.append(("close",))


class StillLearner:
    """Changes the model by +1 per update; `holding_still` records that it was held."""

    def __init__(self, model: nn.Module):
        self.model, self.held = model, 0

    def set_lr(self, lr: float) -> None:
        pass

    def update(self, collected: Collected, update: int, log_now: bool):
        with torch.no_grad():
            for p in self.model.parameters():
                p.add_(1.0)
        return {}, []

    def add_state(self, tensors: dict, meta: dict) -> None:
        meta["held_while_copying"] = self.held

    @contextlib.contextmanager
    def holding_still(self):
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


def _session(tmp_path) -> RunSession:
    cfg = load_config("cartpole-a2c", ["run.eval_every=0", "run.stop_eval_return=null",
                                       "run.checkpoint_every=2"])
    return RunSession(cfg, tmp_path / "run", quiet=True)


def test_sampler_stops_before_the_final_checkpoint_and_empty_items_are_not_updates(tmp_path):
    session = _session(tmp_path)
    model = nn.Linear(2, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    sampler = CountingSampler(session, items=3)
    try:
        run_loop(session, model, sampler, StillLearner(model))
    finally:
        session.close()
    assert session.stop_reason == "SIGINT"
    assert (session.env_steps, session.updates) == (24, 3)
    assert sampler.calls == [("publish", 1), ("publish", 2), ("publish", 3), ("stop",),
                             ("close",)]
    final = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")
    assert final.meta["held_while_copying"] == 1
    assert final.meta["sampler_saw"] == 4  # written after stop(), before close()
    assert final.meta["counters"]["updates"] == 3
    assert torch.equal(final.tensors["model.weight"], torch.full((1, 2), 3.0))
    periodic = load_checkpoint(tmp_path / "run" / "checkpoints" / "update_00000002.safetensors")
    assert torch.equal(periodic.tensors["model.weight"], torch.full((1, 2), 2.0))


def test_a_model_snapshot_replaces_the_live_parameters_and_is_a_copy(tmp_path):
    session = _session(tmp_path)
    model = nn.Linear(2, 1)
    sampler = CountingSampler(session, items=0)
    try:
        run_loop(session, model, sampler, StillLearner(model))
        played = {"model.weight": torch.full((1, 2), 7.0), "model.bias": torch.zeros(1)}
        session.checkpoint("best", played)
        played["model.weight"].add_(1.0)  # changed after the call: the file keeps 7
    finally:
        session.close()
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert torch.equal(best.tensors["model.weight"], torch.full((1, 2), 7.0))
    assert not torch.equal(best.tensors["model.weight"], model.weight.detach())
