"""The NumPy A2C update: the torch update's loss, gradients, statistics and optimizer steps."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from actorcritic.accelerators.numpy_update import NumpyA2CUpdate, supports_numpy_update
from actorcritic.algorithms.update import apply_update, make_optimizer, rollout_loss
from actorcritic.config import AlgoConfig, Config, ModelConfig
from actorcritic.errors import NonFiniteError
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.samplers.rollout import RolloutBuffer

OBS = gym.spaces.Box(-2, 2, (5,), np.float32)
ACTIONS = gym.spaces.Discrete(4)
T, N = 6, 5


def model(shared: bool = False, activation: str = "tanh") -> ActorCritic:
    torch.manual_seed(0)
    m = ActorCritic(OBS, ACTIONS, ModelConfig(hidden_sizes=[16, 8], activation=activation,
                                              shared_trunk=shared))
    with torch.no_grad():  # spread the logits out (the head's init gain is 0.01)
        m.policy.linear.weight.mul_(50)
    return m


def rollout(seed: int) -> RolloutBuffer:
    """Random rollout with terminations, truncations and masked reset steps."""
    rng = np.random.default_rng(seed)
    buf = RolloutBuffer(T, N, OBS, ACTIONS)
    b = buf.np
    b.obs[:] = rng.normal(size=b.obs.shape)
    b.actions[:] = rng.integers(0, 4, size=(T, N))
    b.rewards[:] = rng.normal(size=(T, N))
    b.terminated[:] = rng.random((T, N)) < 0.15
    b.truncated[:] = ~b.terminated & (rng.random((T, N)) < 0.1)
    b.valid[:] = rng.random((T, N)) > 0.2
    return buf


def algo(**overrides) -> AlgoConfig:
    base = dict(optimizer="adam", lr=1e-2, gamma=0.9, gae_lambda=0.8, ent_coef=0.05,
                vf_coef=0.5, max_grad_norm=0.0, normalize_advantage=True)
    return AlgoConfig(**{**base, **overrides})


def torch_update(m: ActorCritic, opt, buf: RolloutBuffer, cfg: AlgoConfig, with_stats=False):
    """The reference: rollout_loss, autograd, apply_update (what run_vector does in torch)."""
    loss, stats = rollout_loss(m, buf, cfg, with_stats=with_stats)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    full = Config()
    full.algo = cfg
    apply_update(m, opt, [p for p in m.parameters()], loss, stats, full, 0, with_stats)
    return loss, stats


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("normalize,ent_coef", [(True, 0.05), (False, 0.0)])
def test_loss_gradients_and_statistics_equal_autograd(shared, activation, normalize, ent_coef):
    cfg = algo(lr=1e-12, normalize_advantage=normalize, ent_coef=ent_coef)
    ref, mine = model(shared, activation), model(shared, activation)
    buf = rollout(1)
    loss, ref_stats = torch_update(ref, make_optimizer(ref.parameters(), cfg), buf, cfg, True)
    update = NumpyA2CUpdate(mine, make_optimizer(mine.parameters(), cfg), cfg)
    stats = update(buf, 0, with_stats=True)
    assert stats.keys() == ref_stats.keys()
    for key, value in ref_stats.items():
        np.testing.assert_allclose(float(stats[key]), float(value), rtol=1e-4, atol=1e-6,
                                   err_msg=key)
    for (name, p), start, end in zip(ref.named_parameters(), update.bounds, update.bounds[1:]):
        np.testing.assert_allclose(update.grad[start:end], p.grad.reshape(-1).numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=name)
    assert np.abs(update.grad).max() > 1e-3  # the comparison is not between zeros


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "rmsprop_tf"])
def test_optimizer_steps_with_clipping_equal_torch_optim(optimizer):
    cfg = algo(optimizer=optimizer, lr=3e-3, max_grad_norm=0.3)
    ref, mine = model(), model()
    ref_opt = make_optimizer(ref.parameters(), cfg)
    mine_opt = make_optimizer(mine.parameters(), cfg)
    update = NumpyA2CUpdate(mine, mine_opt, cfg)
    for i in range(5):
        buf = rollout(10 + i)
        torch_update(ref, ref_opt, buf, cfg)
        stats = update(buf, i)
        assert stats["diag/grad_norm"] > cfg.max_grad_norm  # clipping was active
    for (name, a), b in zip(ref.named_parameters(), mine.parameters()):
        assert not torch.equal(a, model().state_dict()[name])
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    # the optimizer state is torch's, in torch's layout: checkpoints and resume read it
    ref_state, state = ref_opt.state_dict()["state"], mine_opt.state_dict()["state"]
    assert ref_state.keys() == state.keys()
    for idx in ref_state:
        assert ref_state[idx].keys() == state[idx].keys()
        for key in ref_state[idx]:
            torch.testing.assert_close(state[idx][key].float(), ref_state[idx][key].float(),
                                       rtol=1e-4, atol=1e-6)


def test_takes_over_and_hands_back_torch_optimizer_state():
    """A run can resume on either path: state written by torch.optim continues in NumPy and
    the state the NumPy update leaves loads into torch.optim."""
    cfg = algo(max_grad_norm=0.5)
    ref, mine = model(), model()
    ref_opt, mine_opt = make_optimizer(ref.parameters(), cfg), make_optimizer(mine.parameters(),
                                                                              cfg)
    for i in range(2):
        torch_update(ref, ref_opt, rollout(20 + i), cfg)
        torch_update(mine, mine_opt, rollout(20 + i), cfg)
    update = NumpyA2CUpdate(mine, mine_opt, cfg)
    for i in range(2, 4):
        torch_update(ref, ref_opt, rollout(20 + i), cfg)
        update(rollout(20 + i), i)
    handed = copy.deepcopy(model())
    handed.load_state_dict(mine.state_dict())
    handed_opt = make_optimizer(handed.parameters(), cfg)
    handed_opt.load_state_dict(copy.deepcopy(mine_opt.state_dict()))
    torch_update(ref, ref_opt, rollout(24), cfg)
    torch_update(handed, handed_opt, rollout(24), cfg)
    for (name, a), b in zip(ref.named_parameters(), handed.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    assert float(handed_opt.state_dict()["state"][0]["step"]) == 5


def test_parameters_stay_the_models_and_loads_are_seen():
    m = model()
    update = NumpyA2CUpdate(m, make_optimizer(m.parameters(), algo()), algo())
    before = {k: v.clone() for k, v in m.state_dict().items()}
    update(rollout(3), 0)
    after = m.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)  # the step wrote them
    m.load_state_dict(before)  # in place: the flat NumPy view sees it
    assert np.array_equal(update.params, torch.cat([v.reshape(-1) for v in before.values()]))


def test_non_finite_loss_stops_before_the_step_and_names_it():
    m = model()
    update = NumpyA2CUpdate(m, make_optimizer(m.parameters(), algo()), algo())
    before = update.params.copy()
    buf = rollout(4)
    buf.np.rewards[2, 1] = np.nan
    buf.np.valid[:] = True
    with pytest.raises(NonFiniteError, match=r"non-finite loss at update 7 \(losses/policy="):
        update(buf, 7)
    assert np.array_equal(update.params, before)


def test_only_what_it_computes_is_supported():
    m = model()
    assert supports_numpy_update(m, make_optimizer(m.parameters(), algo()))
    assert supports_numpy_update(m, make_optimizer(m.parameters(), algo(optimizer="rmsprop")))
    assert supports_numpy_update(m, make_optimizer(m.parameters(), algo(optimizer="rmsprop_tf")))
    assert not supports_numpy_update(m, torch.optim.SGD(m.parameters(), lr=0.1))
    assert not supports_numpy_update(m, torch.optim.Adam(m.parameters(), weight_decay=0.1))
    assert not supports_numpy_update(m, torch.optim.RMSprop(m.parameters(), momentum=0.9))
    box = ActorCritic(OBS, gym.spaces.Box(-1, 1, (2,), np.float32), ModelConfig())
    assert not supports_numpy_update(box, make_optimizer(box.parameters(), algo()))
    with pytest.raises(ValueError, match="NumPy update needs"):
        NumpyA2CUpdate(box, make_optimizer(box.parameters(), algo()), algo())
