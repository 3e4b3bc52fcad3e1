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

import numpy as np
import torch


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor,
                   truncated: torch.Tensor, gamma: float, gae_lambda: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and value targets (returns = advantages + values[:-1]).

    With gae_lambda=1 the targets are the plain n-step bootstrapped returns of A2C.
    """
    if rewards.device.type == "cpu":
        advantages, returns = gae_numpy(rewards.numpy(), values.detach().numpy(),
                                        terminated.numpy(), truncated.numpy(), gamma, gae_lambda)
        return torch.from_numpy(advantages), torch.from_numpy(returns)
    return _gae_torch(rewards, values, terminated, truncated, gamma, gae_lambda)


def _gae_torch(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor,
               truncated: torch.Tensor, gamma: float, gae_lambda: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """gae_advantages on an accelerator: tensor ops, no copy to the host."""
    not_term = 1.0 - terminated.float()
    not_done = 1.0 - (terminated | truncated).float()
    deltas = rewards + gamma * values[1:] * not_term - values[:-1]
    decay = gamma * gae_lambda * not_done
    advantages = _discounted_backward(deltas, decay)
    return advantages, advantages + values[:-1]


@np.errstate(over="ignore", invalid="ignore")  # overflow gives inf/NaN: the NaN guard names it
def gae_numpy(rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray,
              truncated: np.ndarray, gamma: float, gae_lambda: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """gae_advantages on CPU arrays: a dozen NumPy calls cost less than the torch ops."""
    values = values.astype(np.float32, copy=False)
    deltas = rewards + np.float32(gamma) * values[1:] * ~terminated - values[:-1]
    decay = np.float32(gamma * gae_lambda) * ~(terminated | truncated)
    advantages = _backward_numpy(deltas, decay)
    return advantages, advantages + values[:-1]


def _backward_numpy(x: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """y[t] = x[t] + decay[t] * y[t+1] (y[T] = 0) over time-major [T, N] arrays."""
    out = np.empty_like(x)
    running = np.zeros_like(x[0])
    for t in range(x.shape[0] - 1, -1, -1):
        running = x[t] + decay[t] * running
        out[t] = running
    return out


@np.errstate(over="ignore", invalid="ignore")  # overflow gives inf/NaN: the NaN guard names it
def _discounted_backward(x: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """y[t] = x[t] + decay[t] * y[t+1] (y[T] = 0), over time-major [T, N] (no gradient).

    On the CPU the recursion runs in NumPy: T tiny torch ops cost more than the math.
    """
    x, decay = x.detach(), decay.detach()
    if x.device.type == "cpu":
        return torch.from_numpy(_backward_numpy(x.numpy(), decay.numpy()))
    out = torch.empty_like(x)
    running = torch.zeros_like(x[0])
    for t in range(x.shape[0] - 1, -1, -1):
        running = x[t] + decay[t] * running
        out[t] = running
    return out


def vtrace(behaviour_logp: torch.Tensor, target_logp: torch.Tensor, rewards: torch.Tensor,
           values: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
           gamma: float, rho_bar: float = 1.0, c_bar: float = 1.0, lam: float = 1.0
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace targets v_s and policy-gradient advantages (Espeholt et al. 2018, eq. 1).

    v_s = V(x_s) + sum_t gamma^(t-s) (prod_{i<t} c_i) rho_t delta_t, computed backwards as
    v_s - V(x_s) = rho_s delta_s + gamma c_s (v_{s+1} - V(x_{s+1})).
    Advantages for the policy gradient: rho_s (r_s + gamma v_{s+1} - V(x_s)).
    The trace coefficients are c_s = lam * min(c_bar, ratio_s) (the paper's lambda, Remark 2;
    lam plays the role of GAE's lambda). On-policy (equal log-probs, clips >= 1) v_s equals
    the GAE(lam) target, with lam=1 the n-step return.
    """
    ratio = (target_logp - behaviour_logp).exp()
    rho = ratio.clamp(max=rho_bar)
    c = lam * ratio.clamp(max=c_bar)
    not_term = 1.0 - terminated.float()
    not_done = 1.0 - (terminated | truncated).float()
    deltas = rho * (rewards + gamma * values[1:] * not_term - values[:-1])
    corrections = _discounted_backward(deltas, gamma * c * not_done).to(rewards.dtype)
    vs = values[:-1] + corrections
    # v_{s+1}: the next target inside the episode, the plain value across a boundary.
    vs_next = torch.cat([vs[1:], values[-1:]], 0) * not_done + values[1:] * (1 - not_done)
    advantages = rho * (rewards + gamma * vs_next * not_term - values[:-1])
    return vs, advantages
