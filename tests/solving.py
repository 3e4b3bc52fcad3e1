"""Learning bars for asynchronous algorithms, whose runs are not reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actorcritic.training import train


def solves_in_one_of_two_seeds(preset: str, tmp_path: Path, overrides: list[str],
                               bar: float) -> None:
    """Train `preset` with seed 1, and with seed 2 only if seed 1's final evaluation misses
    `bar`; fail if neither reaches it.

    IMPALA's actors and learner run asynchronously, so no seed pins a run. Observed misses
    of seed 1 on cartpole-impala: a local run next to a Pong training (mean 240, best
    evaluation 335 after 800k steps); a Ray run that stopped on an in-run evaluation of
    497.7 whose final 20 episodes then averaged 472.0 (one episode 337). A preset that does
    not learn fails both seeds.
    """
    summaries = []
    for seed in (1, 2):
        summary = train(preset, tmp_path / f"run{seed}", quiet=True,
                        overrides=[*overrides, f"run.seed={seed}"])
        assert summary["eval"]["episodes"] == 20
        summaries.append(summary)
        if summary["eval"]["mean_return"] >= bar:
            return
    pytest.fail("neither seed solved: " + json.dumps(summaries))
