"""The A2C update for small MLP policies in NumPy: forward, loss, backward, clip, step.

Why: the torch update of a 64-64 actor-critic on a 64-sample CartPole rollout takes about
700 us, and almost none of it is arithmetic; it is operator dispatch and autograd
bookkeeping for a few dozen tiny tensors (benchmarks/update_breakdown.py). The same
arithmetic in NumPy, with the gradients derived by hand, takes a fraction of that.

Nothing moves out of torch: the model's parameters become views of one flat tensor and
the optimizer's state (Adam's moments, RMSprop's square average, the step counts) views of
flat tensors registered in `optimizer.state`, in the layout torch's own optimizers use. So
checkpoints, evaluation, resume and the torch update all read and write the same numbers,
and a run can resume on either path. Tests check the loss, every gradient and the
optimizer steps against autograd and torch.optim.
"""

from __future__ import annotations

import numpy as np
import torch

from actorcritic.accelerators.numpy_acting import supports_numpy_acting
from actorcritic.algorithms.losses import actor_critic_loss
from actorcritic.algorithms.optimizers import RMSpropTF
from actorcritic.algorithms.returns import gae_numpy
from actorcritic.config import AlgoConfig
from actorcritic.errors import NonFiniteError
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.samplers.rollout import RolloutBuffer

_STATE_KEYS = {"adam": ("exp_avg", "exp_avg_sq"), "rmsprop": ("square_avg",),
               "rmsprop_tf": ("square_avg",)}


def supports_numpy_update(model: ActorCritic, optimizer: torch.optim.Optimizer) -> bool:
    """What NumPy acting supports (CPU MLP trunks, one categorical head), every parameter
    trained, and plain Adam or RMSprop (no weight decay, momentum, amsgrad, centering)."""
    if not supports_numpy_acting(model) or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    if not all(p.requires_grad for p in model.parameters()) or group.get("weight_decay"):
        return False
    if group.get("maximize") or group.get("differentiable"):
        return False
    if isinstance(optimizer, torch.optim.Adam):
        return not group.get("amsgrad")
    if isinstance(optimizer, torch.optim.RMSprop):
        return not group.get("momentum") and not group.get("centered")
    return isinstance(optimizer, RMSpropTF)


class _Dense:
    """One linear layer: NumPy views of its weight [out, in], bias and their gradients."""

    def __init__(self, layer: torch.nn.Linear, grad_of):
        self.w, self.b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
        self.gw, self.gb = grad_of(layer.weight), grad_of(layer.bias)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = x @ self.w.T
        out += self.b
        return out

    def backward(self, x: np.ndarray, dout: np.ndarray, need_input_grad: bool = True):
        """Stores the parameter gradients for input x and output gradient dout; returns the
        input gradient."""
        np.matmul(dout.T, x, out=self.gw)
        dout.sum(axis=0, out=self.gb)
        return dout @ self.w if need_input_grad else None


class NumpyA2CUpdate:
    """One A2C update per call, equal to `rollout_loss` + backward + `apply_update`.

    Build it after the optimizer state is loaded (on resume): it takes that state over.
    """

    def __init__(self, model: ActorCritic, optimizer: torch.optim.Optimizer, cfg: AlgoConfig,
                 nan_guard: bool = True):
        if not supports_numpy_update(model, optimizer):
            raise ValueError("the NumPy update needs a CPU MLP policy with a Discrete head "
                             "and plain Adam or RMSprop")
        self.cfg, self.nan_guard = cfg, nan_guard
        self.optimizer = optimizer
        self.kind = ("adam" if isinstance(optimizer, torch.optim.Adam) else
                     "rmsprop_tf" if isinstance(optimizer, RMSpropTF) else "rmsprop")
        named = list(model.named_parameters())
        self.names = [n for n, _ in named]
        sizes = [p.numel() for _, p in named]
        self.bounds = np.cumsum([0] + sizes)
        flat = torch.cat([p.detach().reshape(-1) for _, p in named])
        for (_, p), start, size in zip(named, self.bounds, sizes):
            p.data = flat[start:start + size].view_as(p)
        self.params = flat.numpy()
        self.grad = np.zeros_like(self.params)
        self._scratch = np.empty_like(self.params)
        views = {id(p): (start, size) for (_, p), start, size in zip(named, self.bounds, sizes)}

        def grad_of(p: torch.Tensor) -> np.ndarray:
            start, size = views[id(p)]
            return self.grad[start:start + size].reshape(p.shape)

        self.actor = [_Dense(m, grad_of) for m in _linears(model.actor_trunk.encoder)]
        self.critic = ([_Dense(m, grad_of) for m in _linears(model.critic_trunk.encoder)]
                       if model.critic_trunk is not None else None)
        self.policy = _Dense(model.policy.linear, grad_of)
        self.value = _Dense(model.value, grad_of)
        self.tanh = model.actor_trunk.encoder._act is torch.tanh
        self._bind_optimizer_state([p for _, p in named], flat)

    def _bind_optimizer_state(self, params: list[torch.Tensor], flat: torch.Tensor) -> None:
        """Make the optimizer's per-parameter state views of flat tensors (carrying over
        whatever state it had), so one NumPy operation updates all of it."""
        keys = _STATE_KEYS[self.kind]
        # A fresh RMSpropTF starts its square average at 1, the others their state at 0.
        state = {k: torch.ones_like(flat) if self.kind == "rmsprop_tf" else torch.zeros_like(flat)
                 for k in keys}
        steps = torch.zeros(len(params), dtype=torch.float32)
        for i, p in enumerate(params):
            old = self.optimizer.state.get(p, {})
            start, end = self.bounds[i], self.bounds[i + 1]
            for k in keys:
                if k in old:
                    state[k][start:end] = old[k].reshape(-1)
            if "step" in old:
                steps[i] = float(old["step"])
            self.optimizer.state[p] = {"step": steps[i],
                                       **{k: state[k][start:end].view_as(p) for k in keys}}
        if steps.min() != steps.max():
            raise ValueError("the optimizer's parameters have taken different numbers of steps")
        self.state = {k: v.numpy() for k, v in state.items()}
        self.steps = steps.numpy()

    # ------------------------------------------------------------ forward and backward

    def _act(self, x: np.ndarray) -> np.ndarray:
        if self.tanh:
            return np.tanh(x, out=x)
        return np.maximum(x, 0, out=x)

    def _trunk_forward(self, x: np.ndarray, layers: list[_Dense]) -> list[np.ndarray]:
        """Inputs to every layer, then the trunk's output."""
        outs = [x]
        for layer in layers:
            outs.append(self._act(layer.forward(outs[-1])))
        return outs

    def _trunk_backward(self, outs: list[np.ndarray], layers: list[_Dense], dout: np.ndarray,
                        rows: int) -> None:
        for i in range(len(layers) - 1, -1, -1):
            h = outs[i + 1][:rows]
            dz = dout * (1.0 - h * h) if self.tanh else dout * (h > 0)
            dout = layers[i].backward(outs[i][:rows], dz, need_input_grad=i > 0)

    @np.errstate(all="ignore")  # NaN and inf propagate quietly: the NaN guard names them
    def __call__(self, buf: RolloutBuffer, update: int, with_stats: bool = False
                 ) -> dict[str, float | torch.Tensor]:
        """Loss, gradients, clipping, NaN guard and one optimizer step on `buf`; returns the
        same statistics as the torch update (all of them only `with_stats`)."""
        b = buf.np
        losses, (logp, entropy, values, advantages, returns) = self._loss_and_gradients(buf)
        grad_norm = self.clip_and_guard(losses, update)
        stats: dict[str, float | torch.Tensor] = {"losses/total": float(losses[0])}
        if with_stats:  # the torch update's statistics, gradients as they are stepped with
            stats = self._stats(logp, entropy, values, advantages, returns, b.valid)
            stats["diag/grad_max"] = float(np.abs(self.grad).max())
            stats["diag/grad_var"] = float(self.grad.var(ddof=1))
        stats["diag/grad_norm"] = grad_norm
        self.step()
        return stats

    def clip_and_guard(self, losses: tuple, update: int) -> float:
        """The gradient norm (before clipping); stop on a non-finite loss or gradient; clip
        `self.grad` to algo.max_grad_norm."""
        grad_norm = float(np.sqrt(np.dot(self.grad, self.grad)))
        if self.nan_guard:
            self._guard(*losses, grad_norm, update)
        if self.cfg.max_grad_norm > 0 and np.isfinite(grad_norm):
            coef = self.cfg.max_grad_norm / (grad_norm + 1e-6)
            if coef < 1.0:
                self.grad *= np.float32(coef)
        return grad_norm

    def forward_rows(self, obs: np.ndarray):
        """(actor layer inputs, critic layer inputs, logits, values) for rows of obs."""
        actor_outs = self._trunk_forward(obs, self.actor)
        critic_outs = actor_outs if self.critic is None else self._trunk_forward(obs,
                                                                                 self.critic)
        logits = self.policy.forward(actor_outs[-1])
        return actor_outs, critic_outs, logits, self.value.forward(critic_outs[-1])[:, 0]

    def backward_rows(self, actor_outs, critic_outs, dlogits: np.ndarray,
                      dvalues: np.ndarray) -> None:
        """Every parameter's gradient into `self.grad` (overwritten) from d loss / d logits
        and d loss / d values of the rows `forward_rows` saw."""
        rows = dlogits.shape[0]
        dfeatures = self.policy.backward(actor_outs[-1], dlogits)
        dvalue_features = self.value.backward(critic_outs[-1], dvalues[:, None])
        if self.critic is None:
            self._trunk_backward(actor_outs, self.actor, dfeatures + dvalue_features, rows)
        else:
            self._trunk_backward(actor_outs, self.actor, dfeatures, rows)
            self._trunk_backward(critic_outs, self.critic, dvalue_features, rows)

    def _loss_and_gradients(self, buf: RolloutBuffer):
        """Forward over the rollout, the A2C loss, and its gradient into `self.grad`.
        Returns ((loss, policy, value, entropy losses), what the statistics need)."""
        cfg, b = self.cfg, buf.np
        T, N = buf.num_steps, buf.num_envs
        rows = T * N
        obs = b.obs.reshape((T + 1) * N, -1).astype(np.float32, copy=False)
        if self.critic is None:  # shared trunk: both heads read it, values need row T too
            actor_outs = critic_outs = self._trunk_forward(obs, self.actor)
        else:
            actor_outs = self._trunk_forward(obs[:rows], self.actor)
            critic_outs = self._trunk_forward(obs, self.critic)
        features, value_features = actor_outs[-1][:rows], critic_outs[-1]
        logits = self.policy.forward(features)
        values = self.value.forward(value_features)[:, 0]
        advantages, returns = gae_numpy(b.rewards, values.reshape(T + 1, N), b.terminated,
                                        b.truncated, cfg.gamma, cfg.gae_lambda)
        adv, ret = advantages.reshape(-1), returns.reshape(-1)

        mask = b.valid.reshape(-1).astype(np.float32)
        weight = mask / max(float(mask.sum()), 1.0)
        adv_used = adv
        if cfg.normalize_advantage:
            mean = np.dot(adv, weight)
            centred = adv - mean
            adv_used = centred / (np.sqrt(np.dot(centred * centred, weight)) + 1e-8)
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp_all = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        probs = np.exp(logp_all)
        index = np.arange(rows)
        actions = b.actions.reshape(-1)
        logp = logp_all[index, actions]
        entropy = -(probs * logp_all).sum(axis=1)
        err = ret - values[:rows]
        policy_loss = -np.dot(logp * adv_used, weight)
        value_loss = np.dot(err * err, weight)
        entropy_mean = np.dot(entropy, weight)
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy_mean

        # d loss / d logits: the policy gradient -(onehot - p) * A and the entropy bonus
        # -c dH/dz with dH/dz_j = -p_j (log p_j + H), each weighted by mask / count.
        scale = adv_used * weight
        dlogits = probs * scale[:, None]
        dlogits[index, actions] -= scale
        if cfg.ent_coef:
            dlogits += (cfg.ent_coef * weight)[:, None] * probs * (logp_all + entropy[:, None])
        dvalues = (-2.0 * cfg.vf_coef) * err * weight
        dfeatures = self.policy.backward(features, dlogits)
        dvalue_features = self.value.backward(value_features[:rows], dvalues[:, None])
        if self.critic is None:
            self._trunk_backward(actor_outs, self.actor, dfeatures + dvalue_features, rows)
        else:
            self._trunk_backward(actor_outs, self.actor, dfeatures, rows)
            self._trunk_backward(critic_outs, self.critic, dvalue_features, rows)
        return ((loss, policy_loss, value_loss, entropy_mean),
                (logp, entropy, values, advantages, returns))

    def _stats(self, logp, entropy, values, advantages, returns, valid) -> dict:
        """The logged statistics, from the torch loss on the same numbers (logged updates
        only, so the one definition of every statistic is the torch one)."""
        shape = valid.shape
        _, stats = actor_critic_loss(
            torch.from_numpy(logp.reshape(shape)), torch.from_numpy(entropy.reshape(shape)),
            torch.from_numpy(np.ascontiguousarray(values[:shape[0] * shape[1]]).reshape(shape)),
            torch.from_numpy(advantages), torch.from_numpy(returns), torch.from_numpy(valid),
            self.cfg.vf_coef, self.cfg.ent_coef, self.cfg.normalize_advantage, with_stats=True)
        return stats

    def _guard(self, loss, policy_loss, value_loss, entropy_mean, grad_norm, update) -> None:
        if not np.isfinite(loss):
            raise NonFiniteError(
                f"non-finite loss at update {update} (losses/policy={policy_loss:.4g}, "
                f"losses/value={value_loss:.4g}, losses/entropy={entropy_mean:.4g}, "
                f"losses/total={loss:.4g})")
        if not np.isfinite(grad_norm):
            bad = [name for name, start, end in zip(self.names, self.bounds, self.bounds[1:])
                   if not np.isfinite(self.grad[start:end]).all()]
            raise NonFiniteError(f"non-finite gradient at update {update} in "
                                 f"{', '.join(bad[:3]) or 'the parameters'}")

    # ------------------------------------------------------------ optimizer step

    def step(self) -> None:
        """torch.optim's Adam or RMSprop, or RMSpropTF's step on the flat parameters (same
        formulas)."""
        group = self.optimizer.param_groups[0]
        lr, eps = float(group["lr"]), float(group["eps"])
        g, tmp = self.grad, self._scratch
        self.steps += 1
        if self.kind == "adam":
            beta1, beta2 = group["betas"]
            step = float(self.steps[0])
            m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
            m += np.float32(1 - beta1) * (g - m)          # exp_avg.lerp_(grad, 1 - beta1)
            v *= np.float32(beta2)
            np.multiply(g, g, out=tmp)
            tmp *= np.float32(1 - beta2)
            v += tmp
            np.sqrt(v, out=tmp)
            tmp /= np.float32(np.sqrt(1 - beta2 ** step))
            tmp += np.float32(eps)
            np.divide(m, tmp, out=tmp)
            tmp *= np.float32(lr / (1 - beta1 ** step))
        else:
            alpha = group["alpha"]
            square_avg = self.state["square_avg"]
            square_avg *= np.float32(alpha)
            np.multiply(g, g, out=tmp)
            tmp *= np.float32(1 - alpha)
            square_avg += tmp
            if self.kind == "rmsprop_tf":
                np.add(square_avg, np.float32(eps), out=tmp)
                np.sqrt(tmp, out=tmp)
            else:
                np.sqrt(square_avg, out=tmp)
                tmp += np.float32(eps)
            np.divide(g, tmp, out=tmp)
            tmp *= np.float32(lr)
        self.params -= tmp


def _linears(mlp) -> list[torch.nn.Linear]:
    return [m for m in mlp.net if isinstance(m, torch.nn.Linear)]
