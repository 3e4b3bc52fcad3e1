"""Where the time of cartpole-a2c's loop goes (8 envs, one torch thread).

Per env step: acting with torch (`model.act`) and with NumPy (`NumpyActor`), and one step
of 8 CartPoles on each backend. Per update (8 steps x 8 envs, a synthetic rollout): the
forward pass, GAE, the whole loss, loss plus backward, gradient clipping, the Adam step;
then the whole update in torch and in NumPy (`NumpyA2CUpdate`, what run_vector uses here).

    cd benchmarks && ../.venv/bin/python update_breakdown.py
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import torch

from actorcritic import load_config
from actorcritic.accelerators.numpy_acting import NumpyActor
from actorcritic.accelerators.numpy_update import NumpyA2CUpdate
from actorcritic.algorithms.returns import gae_advantages
from actorcritic.algorithms.update import clip_and_measure, make_optimizer, rollout_loss
from actorcritic.envs import make_vector_env
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.samplers.rollout import RolloutBuffer


def per_call_us(fn, calls: int = 3000) -> float:
    for _ in range(50):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    torch.set_num_threads(1)
    cfg = load_config("cartpole-a2c")
    obs_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)
    model = ActorCritic(obs_space, action_space, cfg.model)
    optimizer = make_optimizer(model.parameters(), cfg.algo)
    params = list(model.parameters())
    buf = RolloutBuffer(cfg.algo.num_steps, cfg.env.num_envs, obs_space, action_space)
    buf.obs.normal_()
    buf.valid.fill_(True)
    buf.rewards.fill_(1.0)
    values = model(buf.obs, buf.first, ())[1].detach()

    def loss_and_backward():
        loss, _ = rollout_loss(model, buf, cfg.algo, with_stats=False)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()

    loss_and_backward()
    obs = buf.obs[0].numpy().copy()
    obs_t, first = torch.from_numpy(obs), torch.zeros(len(obs), dtype=torch.bool)
    actor = NumpyActor(model, seed=0)
    print(f"acting, {len(obs)} envs, per step")
    print(f"{'torch model.act':28s} {per_call_us(lambda: model.act(obs_t, first, ())):8.1f} us")
    print(f"{'NumpyActor':28s} {per_call_us(lambda: actor(obs)):8.1f} us")
    actions = np.zeros(len(obs), dtype=np.int64)
    for backend in ("sync", "vector", "envpool"):
        env_cfg = load_config("cartpole-a2c", [f"env.backend={backend}"]).env
        envs = make_vector_env(env_cfg, seed=0)
        envs.reset(seed=0)
        print(f"{'env step, ' + backend:28s} "
              f"{per_call_us(lambda envs=envs: envs.step(actions), 10000):8.1f} us")
        envs.close()
    rows = {
        "forward": lambda: model(buf.obs, buf.first, ()),
        "gae": lambda: gae_advantages(buf.rewards, values, buf.terminated, buf.truncated,
                                      cfg.algo.gamma, cfg.algo.gae_lambda),
        "loss (incl. forward, gae)": lambda: rollout_loss(model, buf, cfg.algo, with_stats=False),
        "loss + backward": loss_and_backward,
        "clip": lambda: clip_and_measure(params, cfg.algo.max_grad_norm),
        "adam step": optimizer.step,
    }
    print(f"update, {cfg.algo.num_steps} steps x {cfg.env.num_envs} envs")
    for name, fn in rows.items():
        print(f"{name:28s} {per_call_us(fn):8.1f} us")

    def torch_update():
        loss_and_backward()
        clip_and_measure(params, cfg.algo.max_grad_norm)
        optimizer.step()

    other = ActorCritic(obs_space, action_space, cfg.model)
    other.load_state_dict(model.state_dict())
    numpy_update = NumpyA2CUpdate(other, make_optimizer(other.parameters(), cfg.algo), cfg.algo)
    for opt in (optimizer, numpy_update.optimizer):
        opt.param_groups[0]["lr"] = 1e-6  # thousands of steps on one batch: keep it sane
    print(f"{'whole update, torch':28s} {per_call_us(torch_update):8.1f} us")
    print(f"{'whole update, NumPy':28s} {per_call_us(lambda: numpy_update(buf, 0)):8.1f} us")


if __name__ == "__main__":
    main()
