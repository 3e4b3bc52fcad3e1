"""NumPy acting: the same numbers as the torch model, the right action distribution."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from actorcritic.accelerators.numpy_acting import NumpyActor, supports_numpy_acting
from actorcritic.config import ModelConfig
from actorcritic.models.actor_critic import ActorCritic

OBS = gym.spaces.Box(-1, 1, (5,), np.float32)


def model(shared: bool, activation: str = "tanh", actions: int = 4) -> ActorCritic:
    torch.manual_seed(0)
    m = ActorCritic(OBS, gym.spaces.Discrete(actions),
                    ModelConfig(hidden_sizes=[16, 8], activation=activation,
                                shared_trunk=shared))
    with torch.no_grad():  # spread the logits out (the head's init gain is 0.01)
        m.policy.linear.weight.mul_(100)
    return m


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_log_probs_and_values_equal_the_torch_model(shared, activation):
    m = model(shared, activation)
    actor = NumpyActor(m, seed=1)
    obs = np.random.default_rng(2).normal(size=(64, 5)).astype(np.float32)
    actions, logp, values = actor(obs)
    with torch.no_grad():
        params, torch_values, _ = m(torch.from_numpy(obs)[None], torch.zeros(1, 64, dtype=bool),
                                    ())
        torch_logp, _ = m.policy.log_prob_entropy(params[0], torch.from_numpy(actions))
    np.testing.assert_allclose(logp, torch_logp.numpy(), atol=1e-5)
    np.testing.assert_allclose(values, torch_values[0].numpy(), atol=1e-5)
    assert actions.dtype == np.int64 and logp.dtype == values.dtype == np.float32


def test_samples_follow_the_policy_and_see_optimizer_steps():
    m = model(shared=False)
    actor = NumpyActor(m, seed=3)
    obs = np.tile(np.linspace(-1, 1, 5, dtype=np.float32), (20000, 1))
    with torch.no_grad():
        params, _, _ = m(torch.from_numpy(obs[:1])[None], torch.zeros(1, 1, dtype=bool), ())
    probs = torch.softmax(params[0, 0], -1).numpy()
    assert probs.min() > 0.02  # every action is drawn often enough to check its frequency
    actions, _, _ = actor(obs)
    freq = np.bincount(actions, minlength=4) / len(actions)
    np.testing.assert_allclose(freq, probs, atol=0.015)
    # the arrays are views of the parameters: an in-place update is seen at once
    with torch.no_grad():
        m.policy.linear.bias.add_(torch.tensor([50.0, 0, 0, 0]))
    assert (actor(obs[:100])[0] == 0).all()


def test_same_seed_same_actions_and_state_round_trip():
    m = model(shared=True)
    obs = np.random.default_rng(4).normal(size=(8, 5)).astype(np.float32)
    a, b = NumpyActor(m, seed=5), NumpyActor(m, seed=5)
    state = a.get_state()
    first = a(obs)[0]
    assert (first == b(obs)[0]).all()
    a.set_state(state)
    assert (a(obs)[0] == first).all()


def test_only_what_it_can_compute_is_supported():
    assert supports_numpy_acting(model(shared=True))
    box = ActorCritic(OBS, gym.spaces.Box(-1, 1, (2,), np.float32), ModelConfig())
    recurrent = ActorCritic(OBS, gym.spaces.Discrete(2), ModelConfig(core="gru", core_size=4))
    multi = ActorCritic(OBS, gym.spaces.MultiDiscrete([2, 3]), ModelConfig())
    for m in (box, recurrent, multi):
        assert not supports_numpy_acting(m)
    with pytest.raises(ValueError, match="NumpyActor needs"):
        NumpyActor(box, seed=0)
