"""What a trained discrete policy does with its probability: per action, its mean
probability on the states the agent visits, how often it is the most likely action (what a
greedy evaluation plays) and how often it is sampled; then the return of both players.

    cd benchmarks && ../.venv/bin/python policy_actions.py RUN_OR_ZOO_AGENT --episodes 3

Written to explain why a greedy policy can score nothing where sampling from the same
policy scores thousands (docs/BENCHMARKS.md, KungFuMaster). It also prints how often each
player repeats its last action: KungFuMaster's greedy player picks the same kick on almost
every step, and the game attacks when the button is pressed, not while it is held
(`held_fire.py`), so it kicks once and is then beaten; sampling releases the button.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

import actorcritic


def play(agent, greedy: bool, episodes: int, seed: int) -> tuple[list[float], np.ndarray,
                                                                   np.ndarray]:
    """(returns, probabilities [steps, A], actions taken [steps]) over `episodes` games."""
    env = agent.make_env()
    returns, probs, taken = [], [], []
    torch.manual_seed(seed)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        state, first, total, done = agent.model.initial_state(1), True, 0.0, False
        while not done:
            dtype = torch.uint8 if obs.dtype == np.uint8 else torch.float32
            obs_t = torch.as_tensor(np.asarray(obs)[None], dtype=dtype)
            with torch.inference_mode():
                logits, _, state = agent.model(obs_t[None], torch.tensor([[first]]), state)
            p = torch.softmax(logits[0, 0].float(), -1)
            action = int(p.argmax()) if greedy else int(torch.multinomial(p, 1))
            probs.append(p.numpy())
            taken.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done, first = terminated or truncated, False
        returns.append(total)
    env.close()
    return returns, np.array(probs), np.array(taken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent", help="a run dir, a checkpoint or a zoo agent")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    agent = actorcritic.load(args.agent)
    env = agent.make_env()
    meanings = env.unwrapped.get_action_meanings() if hasattr(env.unwrapped,
                                                               "get_action_meanings") else None
    env.close()
    sampled_returns, probs, taken = play(agent, False, args.episodes, args.seed)
    greedy_returns, greedy_probs, greedy_taken = play(agent, True, args.episodes, args.seed)
    n_actions = probs.shape[1]
    meanings = meanings or [str(a) for a in range(n_actions)]
    argmax = probs.argmax(1)
    print(f"{agent}: {len(probs)} steps sampled, {len(greedy_probs)} greedy "
          f"({args.episodes} games each)\n")
    print("| action | mean prob (sampled play) | argmax share | sampled share | "
          "greedy play share |")
    print("|---|---|---|---|---|")
    for a in range(n_actions):
        print(f"| {meanings[a]} | {probs[:, a].mean():.3f} | {np.mean(argmax == a):.3f} | "
              f"{np.mean(taken == a):.3f} | {np.mean(greedy_taken == a):.3f} |")
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(1)
    print(f"\nmean largest probability {probs.max(1).mean():.3f}; mean entropy "
          f"{entropy.mean():.3f} nats (uniform: ln {n_actions} = {math.log(n_actions):.3f})")
    fire = [a for a, m in enumerate(meanings) if "FIRE" in m]
    if fire:
        mass = probs[:, fire].sum(1)
        print(f"actions with FIRE ({len(fire)} of {n_actions}): mean total probability "
              f"{mass.mean():.3f}; the most likely action is one of them in "
              f"{np.mean(np.isin(argmax, fire)):.1%} of states; greedy play chose one in "
              f"{np.mean(np.isin(greedy_taken, fire)):.1%} of its steps")
    for name, actions in (("sampled", taken), ("greedy", greedy_taken)):
        print(f"{name} play repeated its previous action in "
              f"{np.mean(actions[1:] == actions[:-1]):.1%} of its steps")
    print(f"returns: sampled {np.mean(sampled_returns):.1f} {sampled_returns}; greedy "
          f"{np.mean(greedy_returns):.1f} {greedy_returns}")


if __name__ == "__main__":
    main()
