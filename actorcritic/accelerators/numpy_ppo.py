"""PPO's update for small MLP policies in NumPy (`run.numpy_update`), equal to PPOLearner.

Why: CartPole's PPO takes 20 optimizer steps per 256-sample rollout, and in torch each is
some 1-2 ms of dispatch and autograd bookkeeping for a few kilobytes of arithmetic, so the
update is most of a run's time. This is the same update on the same numbers with the
gradients derived by hand, reusing NumpyA2CUpdate's layers, flat parameters and optimizer
step (numpy_update.py); only the loss and its gradient differ.

The per-sample gradient of the clipped surrogate, with r = exp(logp - old_logp):
  d(-min(r A, clip(r) A)) / d logp = -r A where the unclipped term is the smaller one or
  r is inside [1 - c, 1 + c], else 0;
and of the (optionally clipped) squared value error as in `ppo_loss`. Tests compare the
parameters after whole updates with the torch learner's.
"""

from __future__ import annotations

import numpy as np
import torch

from actorcritic.accelerators.numpy_update import NumpyA2CUpdate
from actorcritic.algorithms.losses import explained_variance
from actorcritic.algorithms.ppo import ClipSchedule
from actorcritic.algorithms.returns import gae_numpy
from actorcritic.run.loop import Stats
from actorcritic.samplers.experience import Collected
from actorcritic.schedules import clip_at, minibatch_rng


class NumpyPPOLearner(ClipSchedule):
    def __init__(self, net: NumpyA2CUpdate, cfg, progress):
        self.net, self.cfg, self.progress = net, cfg, progress
        self.optimizer = net.optimizer
        self.clip = clip_at(cfg.algo, progress())

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        algo, b = self.cfg.algo, collected.rollout().buffer.np
        T, N = b.rewards.shape
        obs = b.obs.reshape((T + 1) * N, -1).astype(np.float32, copy=False)
        bootstrap = self.net.forward_rows(obs[T * N:])[3]
        values = np.concatenate([b.values, bootstrap[None]])
        advantages, returns = gae_numpy(b.rewards, values, b.terminated, b.truncated,
                                        algo.gamma, algo.gae_lambda)
        flat = _Flat(obs[:T * N], b.actions.reshape(-1), b.logp.reshape(-1),
                     b.values.reshape(-1), advantages.reshape(-1), returns.reshape(-1),
                     b.valid.reshape(-1))
        rng = minibatch_rng(self.cfg.run.seed, update)
        clip = self.clip
        totals = np.zeros(6)
        steps = epochs_done = 0
        grad_norm = 0.0
        stopped = False
        for _ in range(algo.epochs):
            for index in np.array_split(rng.permutation(T * N), algo.minibatches):
                losses, kl, clipfrac = self._gradients(flat, index, clip)
                if algo.target_kl and kl > 1.5 * algo.target_kl:
                    stopped = True
                    break
                grad_norm = self.net.clip_and_guard(losses, update)
                self.net.step()
                totals += (*losses, kl, clipfrac)
                steps += 1
            if stopped:
                break
            epochs_done += 1
        mean = totals / max(steps, 1)
        stats = dict(zip(("losses/total", "losses/policy", "losses/value", "losses/entropy",
                          "losses/approx_kl", "losses/clipfrac"), mean.tolist()))
        stats["diag/grad_norm"] = grad_norm
        if log_now:
            stats.update({"diag/explained_variance": _explained_variance(flat),
                          "diag/ppo_epochs": float(epochs_done),
                          "diag/ppo_minibatch_steps": float(steps), "diag/clip_coef": clip})
        return stats

    @np.errstate(all="ignore")  # NaN and inf propagate quietly: the NaN guard names them
    def _gradients(self, f: _Flat, index: np.ndarray, clip: float):
        """ppo_loss on the minibatch and its gradient into the flat gradient buffer:
        ((total, policy, value, entropy), approx_kl, clip fraction)."""
        algo = self.cfg.algo
        actor_outs, critic_outs, logits, values = self.net.forward_rows(f.obs[index])
        mask = f.valid[index].astype(np.float32)
        weight = mask / max(float(mask.sum()), 1.0)
        adv = f.advantages[index]
        if algo.normalize_advantage:
            centred = adv - np.dot(adv, weight)
            adv = centred / (np.sqrt(np.dot(centred * centred, weight)) + 1e-8)
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp_all = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        probs = np.exp(logp_all)
        rows = np.arange(len(index))
        actions = f.actions[index]
        log_ratio = logp_all[rows, actions] - f.logp[index]
        ratio = np.exp(log_ratio)
        unclipped = ratio * adv
        clipped = np.clip(ratio, 1 - clip, 1 + clip) * adv
        entropy = -(probs * logp_all).sum(axis=1)
        flows = (unclipped < clipped) | (np.abs(ratio - 1) < clip)
        scale = np.where(flows, ratio * adv, 0.0).astype(np.float32) * weight
        dlogits = probs * scale[:, None]
        dlogits[rows, actions] -= scale
        if algo.ent_coef:
            dlogits += (algo.ent_coef * weight)[:, None] * probs * (logp_all + entropy[:, None])
        value_loss, dvalues = self._value_term(values, f.values[index], f.returns[index], clip)
        self.net.backward_rows(actor_outs, critic_outs, dlogits,
                               (algo.vf_coef * dvalues * weight).astype(np.float32))
        policy_loss = -np.dot(np.minimum(unclipped, clipped), weight)
        value_loss = np.dot(value_loss, weight)
        entropy_mean = np.dot(entropy, weight)
        total = policy_loss + algo.vf_coef * value_loss - algo.ent_coef * entropy_mean
        kl = float(np.dot((ratio - 1) - log_ratio, weight))
        clipfrac = float(np.dot((np.abs(ratio - 1) > clip).astype(np.float32), weight))
        return (total, policy_loss, value_loss, entropy_mean), kl, clipfrac

    def _value_term(self, values, old_values, returns, clip):
        """Per-sample squared error (clipped as in ppo_loss) and its derivative."""
        err = values - returns
        if not self.cfg.algo.clip_value_loss:
            return err * err, 2.0 * err
        delta = values - old_values
        err_clipped = old_values + np.clip(delta, -clip, clip) - returns
        use_clipped = err_clipped * err_clipped > err * err
        grad = np.where(use_clipped, 2.0 * err_clipped * (np.abs(delta) < clip), 2.0 * err)
        return np.maximum(err * err, err_clipped * err_clipped), grad


class _Flat:
    """A rollout flattened to [T * N] samples (observations [T * N, D])."""

    def __init__(self, obs, actions, logp, values, advantages, returns, valid):
        self.obs, self.actions, self.logp, self.values = obs, actions, logp, values
        self.advantages, self.returns, self.valid = advantages, returns, valid


def _explained_variance(f: _Flat) -> float:
    return float(explained_variance(torch.from_numpy(f.values), torch.from_numpy(f.returns),
                                    torch.from_numpy(f.valid)))
