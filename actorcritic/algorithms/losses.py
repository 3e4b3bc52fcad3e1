"""The actor-critic loss as a pure function, with the statistics TensorBoard shows."""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / count


def explained_variance(values: torch.Tensor, returns: torch.Tensor, valid: torch.Tensor
                       ) -> torch.Tensor:
    """1 - Var[returns - values] / Var[returns] over the valid steps (1: perfect, 0: no
    better than a constant, < 0: worse)."""
    mask = valid.float()
    count = mask.sum().clamp(min=1.0)

    def var(x):
        return masked_mean((x - masked_mean(x, mask, count)) ** 2, mask, count)

    with torch.no_grad():
        return 1.0 - var(returns - values) / var(returns).clamp(min=1e-8)


def normalized(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(x - mean) / (std + 1e-8) with the mean and std over the masked entries."""
    mean = masked_mean(x, mask, count)
    std = masked_mean((x - mean) ** 2, mask, count).sqrt()
    return (x - mean) / (std + 1e-8)


def actor_critic_loss(logp: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor,
                      advantages: torch.Tensor, returns: torch.Tensor, valid: torch.Tensor,
                      vf_coef: float, ent_coef: float, normalize_advantage: bool = False,
                      with_stats: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Policy-gradient + value + entropy loss over the valid steps.

    All inputs are [T, N]; `valid` is 0 on reset steps (which belong to no episode).
    advantages and returns are treated as constants. Returns (loss, stats) where stats
    are detached scalars (only `losses/total` unless with_stats).
    """
    mask = valid.float()
    count = mask.sum().clamp(min=1.0)
    adv = advantages.detach()
    if normalize_advantage:
        adv = normalized(adv, mask, count)
    policy_loss = -masked_mean(logp * adv, mask, count)
    value_loss = masked_mean((returns.detach() - values) ** 2, mask, count)
    entropy_mean = masked_mean(entropy, mask, count)
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean
    if not with_stats:  # the diagnostics cost as much as the loss: only when logged
        return loss, {"losses/total": loss.detach()}
    with torch.no_grad():
        ret_mean = masked_mean(returns, mask, count)
        adv_mean = masked_mean(advantages, mask, count)
        stats = {
            "losses/policy": policy_loss.detach(),
            "losses/value": value_loss.detach(),
            "losses/entropy": entropy_mean.detach(),
            "losses/total": loss.detach(),
            "diag/explained_variance": explained_variance(values, returns, valid),
            "diag/advantage_mean": adv_mean,
            "diag/advantage_std": masked_mean((advantages - adv_mean) ** 2, mask, count).sqrt(),
            "diag/value_mean": masked_mean(values, mask, count),
            "diag/value_target_mean": ret_mean,
        }
    return loss, stats


def ppo_loss(logp: torch.Tensor, old_logp: torch.Tensor, entropy: torch.Tensor,
             values: torch.Tensor, old_values: torch.Tensor, advantages: torch.Tensor,
             returns: torch.Tensor, valid: torch.Tensor, clip_coef: float, vf_coef: float,
             ent_coef: float, clip_value_loss: bool = False,
             normalize_advantage: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate + value + entropy loss over the valid samples of a minibatch
    (Schulman et al. 2017, eq. 7 and 9).

    Inputs share one shape; `old_logp` and `old_values` are the acting policy's, advantages
    and returns are constants. With `normalize_advantage` the advantages are normalized over
    this minibatch's valid samples. With `clip_value_loss` the value may move at most
    clip_coef from `old_values`, and the loss is the larger of the clipped and unclipped
    squared errors. The value loss is the mean squared error (no factor 1/2: CleanRL's
    vf_coef 0.5 is 0.25 here). Stats are detached: the loss terms, `losses/approx_kl` (the
    low-variance estimator mean((r - 1) - log r)) and `losses/clipfrac` (share of samples
    whose ratio is outside [1 - clip, 1 + clip]).
    """
    mask = valid.float()
    count = mask.sum().clamp(min=1.0)
    adv = advantages.detach()
    if normalize_advantage:
        adv = normalized(adv, mask, count)
    log_ratio = logp - old_logp.detach()
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip_coef, 1 + clip_coef) * adv)
    policy_loss = -masked_mean(surrogate, mask, count)
    returns = returns.detach()
    value_error = (values - returns) ** 2
    if clip_value_loss:
        old_values = old_values.detach()
        clipped = old_values + (values - old_values).clamp(-clip_coef, clip_coef)
        value_error = torch.max(value_error, (clipped - returns) ** 2)
    value_loss = masked_mean(value_error, mask, count)
    entropy_mean = masked_mean(entropy, mask, count)
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean
    with torch.no_grad():
        stats = {
            "losses/policy": policy_loss.detach(),
            "losses/value": value_loss.detach(),
            "losses/entropy": entropy_mean.detach(),
            "losses/total": loss.detach(),
            "losses/approx_kl": masked_mean((ratio - 1) - log_ratio, mask, count),
            "losses/clipfrac": masked_mean(((ratio - 1).abs() > clip_coef).float(), mask, count),
        }
    return loss, stats
