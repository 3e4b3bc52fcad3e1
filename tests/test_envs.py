"""Classic-control vector backends: one shape, next-step autoreset, raw episode statistics."""

import numpy as np
import pytest

from actorcritic.config import EnvConfig
from actorcritic.envs import make_vector_env
from actorcritic.errors import EnvError


@pytest.mark.parametrize("backend", ["sync", "async", "vector", "envpool"])
def test_backends_share_shapes_autoreset_and_episode_statistics(backend):
    envs = make_vector_env(EnvConfig(id="CartPole-v1", num_envs=4, backend=backend,
                                     max_episode_steps=30), seed=7)
    try:
        assert envs.num_envs == 4
        assert envs.single_observation_space.shape == (4,)
        obs = envs.reset(seed=7)
        assert obs.shape == (4, 4) and obs.dtype == np.float32
        rng = np.random.default_rng(0)
        returns, lengths = np.zeros(4), np.zeros(4, dtype=int)
        reset_next = np.zeros(4, dtype=bool)
        reported = []
        for _ in range(200):
            obs, reward, terminated, truncated, episodes = envs.step(rng.integers(0, 2, 4))
            assert obs.shape == (4, 4) and reward.dtype == np.float32
            # the step after an episode end is a reset step: no reward, no end
            assert not (terminated | truncated)[reset_next].any()
            assert (reward[reset_next] == 0).all()
            returns[~reset_next] += reward[~reset_next]
            lengths[~reset_next] += 1
            done = (terminated | truncated) & ~reset_next
            for ep in episodes:
                assert done[ep.env_index]
                assert ep.length == lengths[ep.env_index] <= 30
                assert ep.ret == pytest.approx(returns[ep.env_index])
                reported.append(ep)
            assert len(episodes) == done.sum()
            returns[done], lengths[done] = 0, 0
            reset_next = done
        assert len(reported) >= 20 and any(ep.length == 30 for ep in reported)
    finally:
        envs.close()


def test_vector_backend_needs_a_vectorized_implementation():
    with pytest.raises(EnvError, match="Acrobot-v1' has no vectorized implementation.*sync"):
        make_vector_env(EnvConfig(id="Acrobot-v1", backend="vector"))
    with pytest.raises(EnvError, match="unknown env id 'CartPol-v1'"):
        make_vector_env(EnvConfig(id="CartPol-v1", backend="vector"))
