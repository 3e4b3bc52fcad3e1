"""Where the time of one SAC gradient step goes (halfcheetah-sac's settings: batch 256,
256-256 ReLU actor and twin critics, one torch thread), on a fixed set of minibatches.

Whole steps, the variants alternating round by round (side by side, so load changes hit
all): the learner's `gradient_step` in float32, with bfloat16 matrix products
(`model.precision=bfloat16`), and, unless --no-compile, with the actor's and critics'
networks under `torch.compile` (inductor; its compile time is not counted). Then its parts: the replay
draw, the critics' loss with its backward, the actor's, the Adam steps, the Polyak update,
and the 256x256x256 matrix product (the hidden layer's shape) in both precisions.

    cd benchmarks && ../.venv/bin/python sac_update_breakdown.py [--rounds 3] [--steps 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from common import machine, print_table

from actorcritic import load_config
from actorcritic.algorithms.sac import SACLearner, sac_actor_loss, sac_critic_target
from actorcritic.algorithms.twin_critics import frozen, polyak_update, twin_critic_loss
from actorcritic.models.off_policy import OffPolicyActorCritic
from actorcritic.models.precision import bfloat16_matrix_products
from actorcritic.samplers.replay_buffer import ReplayBuffer

OBS_DIM, ACTION_DIM = 17, 6  # HalfCheetah-v5


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def build(seed: int = 0) -> tuple[SACLearner, ReplayBuffer]:
    torch.manual_seed(seed)
    cfg = load_config("halfcheetah-sac")
    obs_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    model = OffPolicyActorCritic(obs_space, gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,)), cfg)
    buffer = ReplayBuffer(10_000, obs_space, ACTION_DIM)
    buffer.add(np.random.randn(10_000, OBS_DIM), np.random.uniform(-1, 1, (10_000, ACTION_DIM)),
               np.random.randn(10_000), np.random.randn(10_000, OBS_DIM),
               np.random.rand(10_000) < 0.001)
    return SACLearner(model, cfg, torch.device("cpu"), ACTION_DIM), buffer


def whole_steps(rounds: int, steps: int, compile_too: bool) -> list[list]:
    learner, buffer = build()
    batches = [buffer.sample(256) for _ in range(50)]

    def run(step):
        return lambda: [step(batches[i % 50], 0) for i in range(steps)]

    variants = {"float32": run(learner.gradient_step)}

    def bfloat16_steps():
        with bfloat16_matrix_products():
            run(learner.gradient_step)()

    variants["bfloat16 matrix products"] = bfloat16_steps
    if compile_too:  # the networks, forward and (AOTAutograd) backward; compiled while
        # warming up below, outside the timing
        other, _ = build()
        for owner, name in ((other.model, "critics"), (other.model, "actor_trunk"),
                            (other.model, "policy"), (other, "target_critics")):
            setattr(owner, name, torch.compile(getattr(owner, name)))
        variants["networks under torch.compile"] = run(other.gradient_step)
    for fn in variants.values():  # warm up: the first steps allocate
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(per_call_us(fn, 1) / steps / 1e3)
    base = statistics.median(times["float32"])
    return [[name, f"{statistics.median(ms):.2f}", f"{base / statistics.median(ms):.2f}x",
             " / ".join(f"{t:.2f}" for t in ms)] for name, ms in times.items()]


def parts(calls: int) -> list[list]:
    learner, buffer = build()
    model, opt = learner.model, learner.optimizers
    batch = buffer.sample(256)
    alpha = learner.log_alpha.detach().exp()

    def critic_loss_and_backward():  # as SACLearner.gradient_step builds it
        with torch.no_grad():
            next_action, next_logp = model.sample_action(batch["next_obs"])
            next_q = learner.target_critics(batch["next_obs"], next_action)
            target = sac_critic_target(batch["rewards"], batch["terminated"], next_q,
                                       next_logp, alpha, learner.cfg.algo.gamma)
        q = model.critics(batch["obs"], batch["actions"])
        twin_critic_loss(q, target).backward()

    def actor_loss_and_backward():
        action, logp = model.sample_action(batch["obs"])
        with frozen(learner.critic_params):
            sac_actor_loss(model.critics(batch["obs"], action), logp, alpha).backward()

    critic_loss_and_backward()
    actor_loss_and_backward()
    learner.log_alpha.grad = torch.zeros(())
    for o in opt.values():
        for group in o.param_groups:
            group["lr"] = 1e-9  # thousands of steps on the same gradients: keep them sane
    targets = list(learner.target_critics.parameters())
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def product_bf16():
        with bfloat16_matrix_products():
            return a @ b

    rows = {
        "replay draw (256)": lambda: buffer.sample(256),
        "critics: target, loss, backward": critic_loss_and_backward,
        "actor: loss, backward": actor_loss_and_backward,
        "Adam step, critics": opt["critic"].step,
        "Adam step, actor": opt["actor"].step,
        "Adam step, temperature": opt["alpha"].step,
        "Polyak update": lambda: polyak_update(targets, learner.critic_params, 0.005),
        "256x256x256 product, float32": lambda: a @ b,
        "256x256x256 product, bfloat16": product_bf16,
    }
    for fn in rows.values():  # warm up
        for _ in range(20):
            fn()
    return [[name, f"{per_call_us(fn, calls):,.1f}"] for name, fn in rows.items()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="gradient steps a round")
    parser.add_argument("--calls", type=int, default=1000, help="calls of each part")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print_table(f"one SAC gradient step, ms ({machine()}, 1 torch thread)",
                ["variant", "ms", "vs float32", "rounds"],
                whole_steps(args.rounds, args.steps, not args.no_compile))
    print_table("its parts, us a call", ["part", "us"], parts(args.calls))


if __name__ == "__main__":
    main()
