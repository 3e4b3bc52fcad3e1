"""PPO on Atari in one file, to be read from top to bottom.

In the manner of CleanRL's ppo_atari_envpool.py: one loop you can follow line by line,
with no sampler, learner or session in between. The pieces it stands on are the
library's public ones, so the math is the math `actorcritic train` runs:

    config   actorcritic.config.load_config        a preset (YAML) plus KEY=VALUE overrides
    envs     actorcritic.envs.make_vector_env      EnvPool with the DeepMind preprocessing
    model    actorcritic.models.actor_critic       Nature CNN, a policy head and a value head
    returns  actorcritic.algorithms.returns        GAE(lambda) advantages and value targets
    losses   actorcritic.algorithms.losses         PPO's clipped surrogate + value + entropy

It even draws the same random numbers in the same order, so with the same preset, seed
and steps its parameters equal those of `actorcritic train PRESET --seed S` bit for bit
(tests/test_single_file_guide.py checks two updates).

    python examples/ppo_single_file.py --preset breakout-ppo --updates 20 --num-envs 8
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from actorcritic.algorithms.losses import ppo_loss
from actorcritic.algorithms.returns import gae_advantages
from actorcritic.config import Config, load_config
from actorcritic.envs import VecEnv, make_vector_env
from actorcritic.models.actor_critic import ActorCritic, build_model, set_threads
from actorcritic.schedules import clip_at, lr_at, minibatch_rng

# ----------------------------------------------------------------------------- config

def make_config(preset: str, seed: int, updates: int = 0, num_envs: int = 0,
                overrides: list[str] | None = None) -> Config:
    """The preset with its overrides, validated as the CLI validates them. `updates` > 0
    sets run.total_steps to that many rollouts (what the learning-rate decay aims at)."""
    extra = [f"run.seed={seed}"] + ([f"env.num_envs={num_envs}"] if num_envs else [])
    cfg = load_config(preset, extra + list(overrides or []))
    if updates:
        cfg.run.total_steps = updates * cfg.algo.num_steps * cfg.env.num_envs
    a = cfg.algo
    refused = {"algo.name (ppo only)": a.name != "ppo",
               "model.core (feedforward only)": cfg.model.core != "none",
               "algo.optimizer (adam only)": a.optimizer != "adam",
               "algo.lr_schedule (constant or linear)": a.lr_schedule == "log10",
               "algo.normalize_reward": a.normalize_reward,
               "algo.processes / algo.overlap": a.processes > 1 or a.overlap}
    bad = [key for key, on in refused.items() if on]
    if bad:
        raise SystemExit(f"this guide covers the plain PPO path; unsupported: {', '.join(bad)}")
    return cfg


def pick_device(name: str) -> torch.device:
    """run.device: auto is the GPU when there is one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


# ----------------------------------------------------------------------------- storage

@dataclass
class Rollout:
    """One rollout, time-major: T steps of N envs. obs and first are [T+1, N, ...]: row T
    is the observation after the last step, whose value is bootstrapped from, and row 0
    of the next rollout. Everything else is [T, N]."""

    obs: torch.Tensor         # uint8 frames [T+1, N, 4, 84, 84]: the network divides by 255
    first: torch.Tensor       # bool: obs[t] starts an episode
    actions: torch.Tensor     # long
    logp: torch.Tensor        # log-probability of the action under the acting policy
    values: torch.Tensor      # the acting policy's value estimate of obs[t]
    rewards: torch.Tensor
    terminated: torch.Tensor  # bool: the episode ended inside the game (value 0 after it)
    truncated: torch.Tensor   # bool: a time limit cut it (bootstrap from obs[t + 1])
    valid: torch.Tensor       # bool: False on the reset step after an episode end

    @classmethod
    def empty(cls, T: int, N: int, obs_space: gym.Space, device: torch.device) -> Rollout:
        def zeros(shape: tuple, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        return cls(zeros((T + 1, N, *obs_space.shape), obs_dtype),
                   zeros((T + 1, N), torch.bool), zeros((T, N), torch.long), zeros((T, N)),
                   zeros((T, N)), zeros((T, N)), zeros((T, N), torch.bool),
                   zeros((T, N), torch.bool), zeros((T, N), torch.bool))


# ----------------------------------------------------------------------------- acting

def collect(envs: VecEnv, model: ActorCritic, ro: Rollout, reset_next: np.ndarray,
            reward_scale: float) -> tuple[list, np.ndarray]:
    """Act for T steps from ro.obs[0], filling `ro`; returns the finished episodes and
    which envs reset on their next step.

    The envs reset themselves one step after an episode ends ("next-step autoreset"):
    the step after the end returns the new episode's first frame and ignores the action.
    That step belongs to no episode, so it is marked invalid and the losses skip it."""
    episodes = []
    for t in range(ro.actions.shape[0]):  # (NumPy rows are copied into the tensors' device)
        ro.valid[t] = torch.from_numpy(~reset_next)
        # One inference-mode forward pass; the action is sampled from torch's global
        # random stream, seeded once before the model was built.
        action, logp, value, _ = model.act(ro.obs[t], ro.first[t], ())
        obs, reward, terminated, truncated, finished = envs.step(action.cpu().numpy())
        ro.actions[t], ro.logp[t], ro.values[t] = action, logp, value
        ro.obs[t + 1] = torch.from_numpy(obs)
        ro.rewards[t] = torch.from_numpy(reward * reward_scale)
        ro.terminated[t] = torch.from_numpy(terminated)
        ro.truncated[t] = torch.from_numpy(truncated)
        ro.first[t + 1] = torch.from_numpy(reset_next)  # after a reset step: a first frame
        reset_next = ~reset_next & (terminated | truncated)
        episodes += finished  # scored on the raw game (all lives, unclipped rewards)
    return episodes, reset_next


# ----------------------------------------------------------------------------- learning

def advantages_and_returns(model: ActorCritic, ro: Rollout, cfg: Config
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and value targets [T, N] from the acting values plus the value of
    the observation after the last step (the bootstrap)."""
    T = ro.actions.shape[0]
    with torch.no_grad():
        _, bootstrap, _ = model(ro.obs[T:], ro.first[T:], ())  # [1, N]
    values = torch.cat([ro.values, bootstrap])  # [T+1, N]
    return gae_advantages(ro.rewards, values, ro.terminated, ro.truncated,
                          cfg.algo.gamma, cfg.algo.gae_lambda)


def ppo_update(model: ActorCritic, optimizer: torch.optim.Optimizer, ro: Rollout,
               cfg: Config, update: int, clip: float) -> dict[str, float]:
    """`algo.epochs` passes over the rollout, each a fresh shuffle of its T * N samples
    cut into `algo.minibatches`; one clipped Adam step per minibatch. Returns the mean of
    the loss statistics over the steps taken."""
    algo = cfg.algo
    T, N = ro.actions.shape
    advantages, returns = advantages_and_returns(model, ro, cfg)  # no gradient: constants
    # Frames converted to float (/255) once, not once a pass: the same values, bit for bit.
    frames = model.learner_obs(ro.obs[:T])

    def flat(x: torch.Tensor) -> torch.Tensor:  # [T, N, ...] -> [T * N, ...]
        return x.reshape(T * N, *x.shape[2:])

    b_obs, b_first, b_actions = flat(frames), flat(ro.first[:T]), flat(ro.actions)
    b_logp, b_values, b_valid = flat(ro.logp), flat(ro.values), flat(ro.valid)
    b_adv, b_ret = flat(advantages), flat(returns)
    rng = minibatch_rng(cfg.run.seed, update)  # a stream of its own per update
    totals: dict[str, float] = {}
    steps = 0
    for _ in range(algo.epochs):
        for part in np.array_split(rng.permutation(T * N), algo.minibatches):
            mb = torch.from_numpy(part).to(ro.obs.device)
            # The minibatch's samples as one time step of a batch: [1, n, ...].
            params, values, _ = model(b_obs[mb][None], b_first[mb][None], ())
            logp, entropy = model.policy.log_prob_entropy(params[0], b_actions[mb])
            # -clipped surrogate + vf_coef * value error (clipped around the acting value
            # with clip_value_loss) - ent_coef * entropy, over the valid samples; the
            # advantages are normalized over this minibatch inside.
            loss, stats = ppo_loss(logp, b_logp[mb], entropy, values[0], b_values[mb],
                                   b_adv[mb], b_ret[mb], b_valid[mb], clip, algo.vf_coef,
                                   algo.ent_coef, algo.clip_value_loss,
                                   algo.normalize_advantage)
            if algo.target_kl and float(stats["losses/approx_kl"]) > 1.5 * algo.target_kl:
                return {k: v / max(steps, 1) for k, v in totals.items()}  # moved too far
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if algo.max_grad_norm > 0:  # rescale all gradients together to this norm
                nn.utils.clip_grad_norm_(model.parameters(), algo.max_grad_norm, foreach=True)
            optimizer.step()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            steps += 1
    return {k: v / max(steps, 1) for k, v in totals.items()}


# ----------------------------------------------------------------------------- the loop

def progress_line(update: int, num_updates: int, env_steps: int, sps: float,
                  returns: deque[float], lr: float, stats: dict[str, float]) -> str:
    """One line per update: the mean raw score of the last 100 episodes, and the loss
    statistics averaged over the update's minibatch steps."""
    mean = f"{np.mean(returns):.1f}" if returns else "-"
    return (f"update {update}/{num_updates} steps {env_steps} sps {sps:.0f} return100 {mean} "
            f"lr {lr:.2e} policy {stats['losses/policy']:.4f} "
            f"value {stats['losses/value']:.4f} kl {stats['losses/approx_kl']:.4f} "
            f"clipfrac {stats['losses/clipfrac']:.3f}")


def train_ppo(cfg: Config, log: bool = True) -> ActorCritic:
    """Train until run.total_steps env steps; returns the model."""
    algo, device = cfg.algo, pick_device(cfg.run.device)
    T, N = algo.num_steps, cfg.env.num_envs
    # Envs: env i is seeded with seed + i. make_vector_env reads env.backend (EnvPool in
    # the Atari presets) and applies the preset's DeepMind preprocessing.
    envs = make_vector_env(cfg.env, seed=cfg.run.seed, mode="train")
    obs_space = envs.single_observation_space
    # Torch threads as the library sets them (all cores for a CNN): before the model,
    # because the orthogonal init's QR decomposition depends on the thread count.
    set_threads(cfg, obs_space)
    torch.manual_seed(cfg.run.seed)  # the one seed: initial weights, then every action
    model = build_model(cfg, obs_space, envs.single_action_space).to(device)
    # Adam as the library builds it (fused: one kernel for all parameters).
    optimizer = torch.optim.Adam(model.parameters(), lr=algo.lr, eps=algo.optim_eps,
                                 fused=True)
    ro = Rollout.empty(T, N, obs_space, device)
    ro.obs[0] = torch.from_numpy(envs.reset(seed=cfg.run.seed))
    ro.first[0] = True  # every env starts an episode
    reset_next = np.zeros(N, dtype=bool)
    returns: deque[float] = deque(maxlen=100)
    env_steps, start = 0, time.monotonic()
    num_updates = -(-cfg.run.total_steps // (T * N))  # the library stops at >= total_steps
    try:
        for update in range(1, num_updates + 1):
            # Learning rate and clip range at this point of training (algo.lr_schedule,
            # algo.clip_schedule: constant, or linear decay to 0 at run.total_steps).
            lr = lr_at(algo, env_steps, cfg.run.total_steps, episodes=0)  # log10: refused
            clip = clip_at(algo, env_steps / cfg.run.total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            episodes, reset_next = collect(envs, model, ro, reset_next, algo.reward_scale)
            env_steps += T * N
            returns.extend(ep.ret for ep in episodes)
            stats = ppo_update(model, optimizer, ro, cfg, update, clip)
            ro.obs[0], ro.first[0] = ro.obs[T], ro.first[T]  # the next rollout starts here
            if log:
                sps = env_steps / (time.monotonic() - start)
                print(progress_line(update, num_updates, env_steps, sps, returns, lr, stats),
                      flush=True)
    finally:
        envs.close()
    return model


def main(argv: list[str] | None = None) -> ActorCritic:
    p = argparse.ArgumentParser(description="PPO on Atari in one readable file")
    p.add_argument("--preset", default="breakout-ppo", help="a PPO preset (pong-ppo, ...)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--updates", type=int, default=0,
                   help="rollouts to train on (0: the preset's run.total_steps)")
    p.add_argument("--num-envs", type=int, default=0, help="0: the preset's env.num_envs")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides, as for `actorcritic train --set`")
    args = p.parse_args(argv)
    cfg = make_config(args.preset, args.seed, args.updates, args.num_envs, args.overrides)
    return train_ppo(cfg)


if __name__ == "__main__":
    main()
