"""Short real runs that must learn (part of make test), and same-seed determinism."""

import pytest

from actorcritic import train

TIMING = {"wall_seconds", "eval_seconds", "sps", "run_dir"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cartpole_a2c_solves_within_200k_steps(tmp_path, seed):
    summary = train("cartpole-a2c", tmp_path / "run", quiet=True,
                    overrides=[f"run.seed={seed}"])
    assert summary["env_steps"] <= 200_000 + 64
    assert summary["eval"]["episodes"] == 20
    assert summary["eval"]["mean_return"] >= 475, summary


@pytest.mark.slow
def test_same_seed_gives_identical_summaries(tmp_path):
    overrides = ["run.total_steps=30000", "run.eval_episodes=5", "run.seed=5"]
    a = train("cartpole-a2c", tmp_path / "a", quiet=True, overrides=overrides)
    b = train("cartpole-a2c", tmp_path / "b", quiet=True, overrides=overrides)
    strip = lambda s: {k: v for k, v in s.items() if k not in TIMING}  # noqa: E731
    assert strip(a) == strip(b)
    assert a["episodes"] > 50


@pytest.mark.slow
def test_masked_cartpole_needs_memory(tmp_path):
    """Velocities hidden: the LSTM policy solves it, the feedforward one cannot."""
    lstm = train("cartpole-masked-lstm-a2c", tmp_path / "lstm", quiet=True)
    assert lstm["eval"]["mean_return"] >= 400, lstm
    flat = train("cartpole-masked-lstm-a2c", tmp_path / "flat", quiet=True,
                 overrides=["model.core=none"])
    assert flat["eval"]["mean_return"] < 200, flat
