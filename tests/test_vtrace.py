"""V-trace against a plain reference loop written from the IMPALA paper (Espeholt et al. 2018,
eq. 1), on random data with terminations, truncations and clipped importance weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actorcritic.algorithms.returns import gae_advantages, vtrace


def reference_vtrace(b_logp, t_logp, rewards, values, term, trunc, gamma, rho_bar, c_bar,
                     lam=1.0):
    """Direct sums, one env and one start step at a time, no recursion.

    v_s = V(x_s) + sum_{t=s}^{e} gamma^(t-s) (prod_{i=s}^{t-1} c_i) delta_t, where e is the last
    step of the episode inside the rollout, delta_t = rho_t (r_t + gamma V(x_{t+1}) - V(x_t))
    with no bootstrap after a termination. The policy-gradient advantage is
    rho_s (r_s + gamma v_{s+1} - V(x_s)), where v_{s+1} is V(x_{s+1}) when the episode ends
    at s (truncation: the final observation's value) or the rollout ends, and 0 after a
    termination. The trace coefficients are c_i = lam * min(c_bar, ratio_i) (the paper's
    Remark 2).
    """
    T, N = rewards.shape
    ratio = np.exp(t_logp - b_logp)
    rho = np.minimum(rho_bar, ratio)
    c = lam * np.minimum(c_bar, ratio)
    vs = np.zeros((T, N))
    adv = np.zeros((T, N))
    for n in range(N):
        def delta(t, n=n):
            boot = 0.0 if term[t, n] else gamma * values[t + 1, n]
            return rho[t, n] * (rewards[t, n] + boot - values[t, n])

        for s in range(T):
            total = 0.0
            for t in range(s, T):
                weight = gamma ** (t - s) * np.prod([c[i, n] for i in range(s, t)])
                total += weight * delta(t)
                if term[t, n] or trunc[t, n]:
                    break
            vs[s, n] = values[s, n] + total
        for s in range(T):
            if term[s, n]:
                nxt = 0.0
            elif trunc[s, n] or s == T - 1:
                nxt = values[s + 1, n]
            else:
                nxt = vs[s + 1, n]
            adv[s, n] = rho[s, n] * (rewards[s, n] + gamma * nxt - values[s, n])
    return vs, adv


def random_batch(seed: int, T: int = 12, N: int = 5, spread: float = 1.0):
    g = np.random.default_rng(seed)
    b_logp = np.log(g.uniform(0.05, 1.0, (T, N)))
    t_logp = b_logp + g.normal(0.0, spread, (T, N))
    rewards = g.normal(size=(T, N))
    values = g.normal(size=(T + 1, N))
    ends = g.random((T, N))
    term = ends < 0.12
    trunc = (ends >= 0.12) & (ends < 0.2)
    return b_logp, t_logp, rewards, values, term, trunc


def as_torch(*arrays):
    return [torch.as_tensor(a, dtype=torch.bool if a.dtype == bool else torch.float64)
            for a in arrays]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rho_bar,c_bar,lam", [(1.0, 1.0, 1.0), (2.0, 0.5, 1.0), (0.7, 0.9, 1.0),
                                               (100.0, 100.0, 1.0), (1.0, 1.0, 0.9)])
def test_vtrace_matches_paper_definition(seed, rho_bar, c_bar, lam):
    data = random_batch(seed)
    b_logp, t_logp, rewards, values, term, trunc = data
    assert term.any() and trunc.any()
    assert (np.exp(t_logp - b_logp) > max(rho_bar, c_bar)).any() or rho_bar > 10
    vs, adv = vtrace(*as_torch(b_logp, t_logp, rewards, values, term, trunc), gamma=0.97,
                     rho_bar=rho_bar, c_bar=c_bar, lam=lam)
    ref_vs, ref_adv = reference_vtrace(*data, gamma=0.97, rho_bar=rho_bar, c_bar=c_bar, lam=lam)
    np.testing.assert_allclose(vs.numpy(), ref_vs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(adv.numpy(), ref_adv, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_vtrace_on_policy_equals_n_step_returns(seed):
    b_logp, _, rewards, values, term, trunc = random_batch(seed)
    b, r, v, te, tr = as_torch(b_logp, rewards, values, term, trunc)
    vs, adv = vtrace(b, b.clone(), r, v, te, tr, gamma=0.99, rho_bar=1.0, c_bar=1.0)
    gae_adv, returns = gae_advantages(r, v, te, tr, gamma=0.99, gae_lambda=1.0)
    # gae_advantages keeps its decay in float32 (gamma * float mask), hence the tolerance.
    torch.testing.assert_close(vs, returns, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(adv, gae_adv, rtol=1e-6, atol=1e-6)
    # The same by hand for one env: discounted rewards up to the episode end or rollout end.
    n = 0
    for s in range(r.shape[0]):
        g, k = 0.0, s
        while True:
            g += 0.99 ** (k - s) * float(r[k, n])
            if te[k, n]:
                break
            if tr[k, n] or k == r.shape[0] - 1:
                g += 0.99 ** (k - s + 1) * float(v[k + 1, n])
                break
            k += 1
        assert float(vs[s, n]) == pytest.approx(g, rel=1e-9, abs=1e-9)


def test_vtrace_on_policy_lambda_targets_equal_gae_returns():
    """With lam < 1 the on-policy value targets are the GAE(lam) targets."""
    b_logp, _, rewards, values, term, trunc = random_batch(11)
    b, r, v, te, tr = as_torch(b_logp, rewards, values, term, trunc)
    vs, _ = vtrace(b, b.clone(), r, v, te, tr, gamma=0.99, lam=0.8)
    _, returns = gae_advantages(r, v, te, tr, gamma=0.99, gae_lambda=0.8)
    torch.testing.assert_close(vs, returns, rtol=1e-6, atol=1e-6)


def test_vtrace_clipping_changes_targets():
    """Off-policy data with large ratios: clipping must matter, and lower clips shrink the
    correction toward V(x_s)."""
    b_logp, t_logp, rewards, values, term, trunc = random_batch(7, spread=2.0)
    args = as_torch(b_logp, t_logp, rewards, values, term, trunc)
    vs_hi, _ = vtrace(*args, gamma=0.99, rho_bar=50.0, c_bar=50.0)
    vs_lo, _ = vtrace(*args, gamma=0.99, rho_bar=1.0, c_bar=1.0)
    assert not torch.allclose(vs_hi, vs_lo)
    vs_zero, adv_zero = vtrace(*args, gamma=0.99, rho_bar=1e-9, c_bar=1e-9)
    torch.testing.assert_close(vs_zero, args[3][:-1], atol=1e-7, rtol=0)
    assert adv_zero.abs().max() < 1e-7
