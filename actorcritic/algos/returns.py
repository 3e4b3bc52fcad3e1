"""Returns and advantages as pure functions over time-major tensors [T, N].

Conventions (see envs/vector.py): step t goes from observation t to observation t+1 and
`values` has T+1 rows, the last one being the bootstrap value of observation T.
- terminated[t]: the episode ended inside the MDP; nothing is bootstrapped.
- truncated[t]: a time limit cut the episode; bootstrap from the value of observation t+1,
  which in next-step autoreset is the final observation of that episode.
Either flag stops the accumulation across the boundary. Reset steps (the step after an
episode end) produce garbage here and are masked out by the loss.
"""

from __future__ import annotations

import torch


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor,
                   truncated: torch.Tensor, gamma: float, gae_lambda: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and value targets (returns = advantages + values[:-1]).

    With gae_lambda=1 the targets are the plain n-step bootstrapped returns of A2C.
    """
    T = rewards.shape[0]
    not_term = 1.0 - terminated.float()
    not_done = 1.0 - (terminated | truncated).float()
    deltas = rewards + gamma * values[1:] * not_term - values[:-1]
    decay = gamma * gae_lambda * not_done
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        running = deltas[t] + decay[t] * running
        advantages[t] = running
    return advantages, advantages + values[:-1]


def vtrace(behaviour_logp: torch.Tensor, target_logp: torch.Tensor, rewards: torch.Tensor,
           values: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
           gamma: float, rho_bar: float = 1.0, c_bar: float = 1.0
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace targets v_s and policy-gradient advantages (Espeholt et al. 2018, eq. 1).

    v_s = V(x_s) + sum_t gamma^(t-s) (prod_{i<t} c_i) rho_t delta_t, computed backwards as
    v_s - V(x_s) = rho_s delta_s + gamma c_s (v_{s+1} - V(x_{s+1})).
    Advantages for the policy gradient: rho_s (r_s + gamma v_{s+1} - V(x_s)).
    On-policy (equal log-probs, clips >= 1) v_s equals the n-step return.
    """
    T = rewards.shape[0]
    ratio = (target_logp - behaviour_logp).exp()
    rho = ratio.clamp(max=rho_bar)
    c = ratio.clamp(max=c_bar)
    not_term = 1.0 - terminated.float()
    not_done = 1.0 - (terminated | truncated).float()
    deltas = rho * (rewards + gamma * values[1:] * not_term - values[:-1])
    corrections = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        running = deltas[t] + gamma * c[t] * not_done[t] * running
        corrections[t] = running
    vs = values[:-1] + corrections
    # v_{s+1}: the next target inside the episode, the plain value across a boundary.
    vs_next = torch.cat([vs[1:], values[-1:]], 0) * not_done + values[1:] * (1 - not_done)
    advantages = rho * (rewards + gamma * vs_next * not_term - values[:-1])
    return vs, advantages
