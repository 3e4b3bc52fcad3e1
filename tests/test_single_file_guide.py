"""examples/ppo_single_file.py, the one-file reading guide, computes what the library
computes: after two PPO updates on Atari with the same seed its parameters equal those of
`actorcritic train` bit for bit."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from actorcritic import train
from actorcritic.envs import spaces_for
from actorcritic.models.actor_critic import build_model
from actorcritic.run.checkpoint import load_checkpoint

GUIDE = Path(__file__).resolve().parents[1] / "examples" / "ppo_single_file.py"
PRESET, SEED, UPDATES, NUM_ENVS = "breakout-ppo", 3, 2, 4
# Short rollouts on one torch thread so the two updates take seconds on one core; the
# plain torch path (no NumPy acting or update, no overlap, no helper processes), on the CPU.
OVERRIDES = ["algo.num_steps=32", "run.device=cpu", "run.torch_threads=1",
             "run.numpy_acting=false", "run.numpy_update=false"]


def load_guide():
    pytest.importorskip("envpool")  # the `atari` extra
    pytest.importorskip("ale_py")
    spec = importlib.util.spec_from_file_location("ppo_single_file", GUIDE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # two short Atari PPO runs: seconds
def test_guide_reproduces_actorcritic_train_bit_for_bit(tmp_path, capsys):
    guide = load_guide()
    argv = ["--preset", PRESET, "--seed", str(SEED), "--updates", str(UPDATES),
            "--num-envs", str(NUM_ENVS), "--set", *OVERRIDES]
    model = guide.main(argv)
    assert f"update {UPDATES}/{UPDATES}" in capsys.readouterr().out

    # The library, as `actorcritic train PRESET --seed S --set ...` runs it.
    cfg = guide.make_config(PRESET, SEED, UPDATES, NUM_ENVS, OVERRIDES)
    steps = UPDATES * cfg.algo.num_steps * NUM_ENVS
    summary = train(PRESET, tmp_path / "run", quiet=True, overrides=[
        f"run.seed={SEED}", f"env.num_envs={NUM_ENVS}", f"run.total_steps={steps}",
        "run.eval_episodes=0", *OVERRIDES])
    assert summary["updates"] == UPDATES and summary["env_steps"] == steps
    library = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")
    library = library.section("model")

    ours = model.state_dict()
    assert sorted(ours) == sorted(library)
    different = [k for k in ours if not torch.equal(ours[k], library[k])]
    assert not different, f"tensors differ from the library's: {different}"

    # Equal because both trained, not because neither did: every weight left its init.
    spaces = spaces_for(cfg)
    guide.set_threads(cfg, spaces[0])
    torch.manual_seed(SEED)
    init = build_model(cfg, *spaces).state_dict()
    assert all(not torch.equal(ours[k], init[k]) for k in ours if k.endswith("weight"))
