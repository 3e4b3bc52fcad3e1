"""Returns and advantages against plain Python reference loops on random data."""

import pytest
import torch

from actorcritic.algorithms.returns import _gae_torch, gae_advantages


def reference_gae(rewards, values, terminated, truncated, gamma, lam):
    """Textbook GAE, one env and one step at a time, written independently of the code."""
    T, N = rewards.shape
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        next_adv = 0.0
        for t in reversed(range(T)):
            r = float(rewards[t, n])
            v = float(values[t, n])
            v_next = float(values[t + 1, n])
            if terminated[t, n]:
                delta, next_adv = r - v, 0.0
            elif truncated[t, n]:
                delta, next_adv = r + gamma * v_next - v, 0.0
            else:
                delta = r + gamma * v_next - v
            adv[t][n] = delta + gamma * lam * next_adv
            next_adv = adv[t][n]
    return torch.tensor(adv)


def reference_nstep(rewards, values, terminated, truncated, gamma):
    """n-step bootstrapped returns: sum of discounted rewards to the rollout end or the
    episode end, plus the discounted bootstrap value (none after a termination)."""
    T, N = rewards.shape
    out = torch.zeros(T, N)
    for n in range(N):
        for t in range(T):
            ret, discount = 0.0, 1.0
            for k in range(t, T):
                ret += discount * float(rewards[k, n])
                discount *= gamma
                if terminated[k, n]:
                    break
                if truncated[k, n] or k == T - 1:
                    ret += discount * float(values[k + 1, n])
                    break
            out[t, n] = ret
    return out


def random_batch(T=12, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, N, generator=g)
    values = torch.randn(T + 1, N, generator=g)
    terminated = torch.rand(T, N, generator=g) < 0.15
    truncated = (torch.rand(T, N, generator=g) < 0.1) & ~terminated
    return rewards, values, terminated, truncated


@pytest.mark.parametrize("gae", [gae_advantages, _gae_torch], ids=["cpu-numpy", "torch"])
def test_gae_matches_reference_loop(gae):
    """Both implementations (NumPy for CPU tensors, torch ops for accelerators)."""
    for seed in range(5):
        batch = random_batch(seed=seed)
        for gamma, lam in [(0.99, 0.95), (0.9, 0.5), (1.0, 1.0), (0.98, 0.0)]:
            adv, ret = gae(*batch, gamma, lam)
            expected = reference_gae(*batch, gamma, lam)
            torch.testing.assert_close(adv, expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ret, expected + batch[1][:-1], rtol=1e-5, atol=1e-5)


def test_lambda_one_gives_nstep_returns():
    for seed in range(5):
        rewards, values, terminated, truncated = random_batch(seed=seed)
        _, ret = gae_advantages(rewards, values, terminated, truncated, 0.97, 1.0)
        expected = reference_nstep(rewards, values, terminated, truncated, 0.97)
        torch.testing.assert_close(ret, expected, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    rewards = torch.ones(3, 2)
    values = torch.full((4, 2), 10.0)
    terminated = torch.tensor([[False, False], [True, False], [False, False]])
    truncated = torch.tensor([[False, False], [False, True], [False, False]])
    _, ret = gae_advantages(rewards, values, terminated, truncated, 0.5, 1.0)
    # env 0 terminates at t=1: G_0 = 1 + 0.5 * 1, no bootstrap
    assert ret[0, 0].item() == 1.5
    # env 1 is truncated at t=1: bootstrap from the final observation's value (10)
    assert ret[1, 1].item() == 1 + 0.5 * 10
    assert ret[0, 1].item() == 1 + 0.5 * (1 + 0.5 * 10)
