"""PPO's learner: one rollout -> several epochs of minibatch steps (Schulman et al. 2017).

It runs on A2C's samplers (samplers/sync.py, samplers/overlap.py), composed by
`compose.choose_path`; only the learner differs. Per rollout:

1. GAE advantages and returns from the acting values plus the bootstrap value of the last
   observation (recurrent models: all values recomputed from the rollout's start state,
   which on the synchronous sampler are the acting ones);
2. `algo.epochs` passes, each over a fresh permutation split into `algo.minibatches`:
   feedforward models draw single steps, recurrent models whole env sequences recomputed
   from their stored start state (so the core sees its episodes in order, and `first`
   resets it inside a sequence);
3. each minibatch: `ppo_loss`, backward, clip, NaN guard, one optimizer step; with
   `algo.target_kl` the epochs end before a step whose approximate KL exceeds 1.5 x it;
4. the rollout's observations go into the normalization statistics (model.normalize_obs).

The permutations come from a NumPy stream seeded by (run seed, update), so a resumed run
draws the same minibatches as the run that was never interrupted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from actorcritic.algorithms.losses import explained_variance, ppo_loss
from actorcritic.algorithms.returns import gae_advantages
from actorcritic.algorithms.update import OptimizerState, apply_update
from actorcritic.models.normalize import update_obs_stats
from actorcritic.run.loop import Stats
from actorcritic.samplers.experience import Collected
from actorcritic.samplers.overlap import OverlappedRollouts
from actorcritic.schedules import clip_at, minibatch_rng


def rollout_targets(model: nn.Module, buf, gamma: float, gae_lambda: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(old values [T, N], advantages [T, N], returns [T, N]) of one rollout, no gradient."""
    with torch.no_grad():
        if model.cfg.core == "none":
            last = buf.obs[buf.num_steps:]
            _, bootstrap, _ = model(last, buf.first[buf.num_steps:], ())
            values = torch.cat([buf.values.to(bootstrap.device), bootstrap])
        else:
            _, values, _ = model(buf.obs, buf.first, buf.start_state)
    advantages, returns = gae_advantages(buf.rewards, values, buf.terminated, buf.truncated,
                                         gamma, gae_lambda)
    return values[:-1], advantages, returns


class ClipSchedule(OptimizerState):
    """PPO's two schedules: the loop sets the learning rate before each rollout, and the
    clip range is taken at the same point of training, so both reach 0 together at
    total_steps. Subclasses set `cfg`, `progress` (the fraction of run.total_steps done)
    and `optimizer`."""

    def set_lr(self, lr: float) -> None:
        super().set_lr(lr)
        self.clip = clip_at(self.cfg.algo, self.progress())


class PPOLearner(ClipSchedule):
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg,
                 device: torch.device, progress: Callable[[], float],
                 overlap: OverlappedRollouts | None = None):
        self.model, self.optimizer, self.cfg, self.device = model, optimizer, cfg, device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.progress = progress  # fraction of run.total_steps done (the clip schedule)
        self.overlap = overlap  # algo.overlap: the acting copy gets the new parameters
        self.recurrent = model.cfg.core != "none"
        self.clip = clip_at(cfg.algo, progress())

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        rollout = collected.rollout()
        buf = rollout.buffer
        batch = buf.to(self.device)
        old_values, advantages, returns = rollout_targets(self.model, batch, self.cfg.algo.gamma,
                                                          self.cfg.algo.gae_lambda)
        obs = self.model.learner_obs(batch.obs)  # frames converted once, not once a pass
        rng = minibatch_rng(self.cfg.run.seed, update)
        clip = self.clip
        totals: dict[str, torch.Tensor] = {}
        steps, epochs_done, stop = 0, 0, False
        last: dict = {}
        for _ in range(self.cfg.algo.epochs):
            for index in self._minibatches(rng, batch):
                loss, stats = self._loss(batch, obs, index, old_values, advantages, returns,
                                         clip)
                if self.cfg.algo.target_kl and \
                        float(stats["losses/approx_kl"]) > 1.5 * self.cfg.algo.target_kl:
                    stop = True
                    break
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                apply_update(self.model, self.optimizer, self.params, loss, stats, self.cfg,
                             update, log_now=False)
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                steps, last = steps + 1, stats
            if stop:
                break
            epochs_done += 1
        update_obs_stats(self.model, batch.obs)
        if self.overlap is not None:
            self.overlap.release(rollout)
        out = {k: v / max(steps, 1) for k, v in totals.items()}
        if last:
            out["diag/grad_norm"] = last["diag/grad_norm"]
        if log_now:
            out["diag/explained_variance"] = explained_variance(old_values, returns, batch.valid)
            out["diag/ppo_epochs"] = torch.tensor(float(epochs_done))
            out["diag/ppo_minibatch_steps"] = torch.tensor(float(steps))
            out["diag/clip_coef"] = torch.tensor(clip)
        return out

    def _minibatches(self, rng: np.random.Generator, batch):
        """Index sets of one epoch: env columns (recurrent) or flat [T * N] steps."""
        n = batch.num_envs if self.recurrent else batch.num_steps * batch.num_envs
        for part in np.array_split(rng.permutation(n), self.cfg.algo.minibatches):
            yield torch.from_numpy(part).to(self.device)

    def minibatch_forward(self, batch, index: torch.Tensor, obs: torch.Tensor | None = None):
        """(log-probs, entropies, values, pick) of a minibatch at the current parameters;
        `pick` selects the minibatch's entries of any [T, N] tensor of the rollout. `obs` is
        the rollout's observations as `model.learner_obs` holds them (default: as stored)."""
        T = batch.num_steps
        obs = batch.obs if obs is None else obs
        if self.recurrent:  # whole sequences from their start state: [T, n]
            state = tuple(s[index] for s in batch.start_state)
            params, values, _ = self.model(obs[:T, index], batch.first[:T, index], state)

            def pick(x):
                return x[:, index]
        else:  # single steps as one time step of a batch: [1, n]
            def pick(x):
                return x.reshape(T * batch.num_envs, *x.shape[2:])[index]

            params, values, _ = self.model(pick(obs[:T])[None],
                                           pick(batch.first[:T])[None], ())
            params, values = params[0], values[0]
        logp, entropy = self.model.policy.log_prob_entropy(params, pick(batch.actions))
        return logp, entropy, values, pick

    def _loss(self, batch, obs: torch.Tensor, index: torch.Tensor, old_values: torch.Tensor,
              advantages: torch.Tensor, returns: torch.Tensor, clip: float):
        algo = self.cfg.algo
        logp, entropy, values, pick = self.minibatch_forward(batch, index, obs)
        return ppo_loss(logp, pick(batch.logp), entropy, values, pick(old_values),
                        pick(advantages), pick(returns), pick(batch.valid), clip,
                        algo.vf_coef, algo.ent_coef, algo.clip_value_loss,
                        algo.normalize_advantage)
