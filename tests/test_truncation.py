"""A time limit is not the end of the task: V(s0) must approach 1/(1-gamma), not the
discounted sum of the 20 rewards before the limit."""

import pytest
import torch

from actorcritic import load_config, train
from actorcritic.config import config_from_dict
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.training import build_model, spaces_for


@pytest.mark.slow
def test_value_of_time_limited_constant_reward(tmp_path):
    gamma = 0.98
    cfg = load_config("cartpole-a2c", [
        "env.id=ConstantReward-v0", "env.backend=sync", "env.num_envs=4",
        f"algo.gamma={gamma}", "algo.gae_lambda=1.0", "algo.num_steps=5", "algo.lr=3e-3",
        "algo.lr_schedule=constant", "algo.normalize_advantage=false", "algo.vf_coef=1.0",
        "algo.max_grad_norm=10", "run.total_steps=20000", "run.eval_episodes=0"])
    summary = train(cfg, tmp_path / "run", quiet=True)
    assert summary["episodes"] > 0
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")
    cfg = config_from_dict(ckpt.meta["config"])
    model = build_model(cfg, *spaces_for(cfg))
    model.load_state_dict(ckpt.section("model"))
    _, _, value, _ = model.act(torch.ones(1, 2), torch.ones(1, dtype=torch.bool), ())
    true_value = 1 / (1 - gamma)  # 50
    episode_sum = (1 - gamma ** 20) / (1 - gamma)  # 16.6: what treating the limit as an end learns
    assert abs(value.item() - true_value) < 1.0, (value.item(), true_value, episode_sum)
