"""How much of a network still responds to what it sees: per checkpoint, the share of each
ReLU layer's units that are positive on at least one of the frames a sampled policy visits,
and how much the value and the action logits vary across those frames.

    cd benchmarks && ../.venv/bin/python dead_units.py RUN/checkpoints/*.safetensors

Written for an A3C Pong run whose entropy stayed at the uniform 1.79 and explained variance
at 0 for 1.9M steps (docs/BENCHMARKS.md, Pong with A3C): its value was the same number on
every frame (std 2e-7) because every unit of the convolutions and the 512-unit layer was
either off or on for all frames alike. A network in that state gets no gradient that depends
on the input and does not recover; a live one shows a value spread of 0.1 or more.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

import actorcritic


def visited_frames(agent, steps: int, every: int, seed: int) -> torch.Tensor:
    """Observations [F, ...] every `every` steps of `steps` played by sampling the policy."""
    env = agent.make_env()
    torch.manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    state, frames = agent.initial_state(), []
    for t in range(steps):
        action, state = agent.act(obs, state, deterministic=False)
        obs, _, terminated, truncated, _ = env.step(action)
        if t % every == 0:
            frames.append(np.asarray(obs))
        if terminated or truncated:
            obs, _ = env.reset()
            state = agent.initial_state()
    env.close()
    return torch.as_tensor(np.stack(frames))


def responses(model: nn.Module, frames: torch.Tensor) -> dict[str, float]:
    """Per ReLU layer the share of units ever positive; the value's and logits' spread."""
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = [module.register_forward_hook(
        lambda mod, args, out, name=name: seen.append((name, out.detach())))
        for name, module in model.named_modules() if isinstance(module, nn.ReLU)]
    try:
        with torch.inference_mode():
            n = frames.shape[0]
            logits, values, _ = model(frames[None], torch.ones(1, n, dtype=torch.bool),
                                      model.initial_state(n))
    finally:
        for hook in hooks:
            hook.remove()
    out = {}
    for name, act in seen:
        units = act.reshape(n, -1)  # a convolution's units are its channel x position outputs
        out[f"{name} ever on"] = float((units > 0).any(0).float().mean())
    out["value std"] = float(values.float().std())
    out["logits std"] = float(logits.float().std(1).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files, run dirs or zoo agents")
    parser.add_argument("--steps", type=int, default=600, help="env steps played per checkpoint")
    parser.add_argument("--every", type=int, default=5, help="keep every n-th frame")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for target in args.checkpoints:
        agent = actorcritic.load(target)
        if agent.recurrent:
            raise SystemExit(f"{target}: a recurrent model; this script reads feedforward ones")
        stats = responses(agent.model, visited_frames(agent, args.steps, args.every, args.seed))
        print(target)
        for key, value in stats.items():
            print(f"  {key:<40} {value:.3g}")


if __name__ == "__main__":
    main()
