"""Evaluation plays exactly the games it would play if every env were stepped to the end:
an env that has played its quota is retired (no longer emulated), and the other envs'
episodes, their order and the actions chosen for them do not change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actorcritic.config import EnvConfig, ModelConfig
from actorcritic.envs import make_vector_env
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.run import evaluate


class SteppedToTheEnd:
    """The same vector env without `retire`: every env is stepped until the last game ends
    (how evaluation played before retirement), counting the env steps it emulates."""

    def __init__(self, envs):
        self.envs, self.emulated = envs, 0

    def step(self, actions):
        self.emulated += self.envs.num_envs
        return self.envs.step(actions)

    def __getattr__(self, name):
        if name == "retire":
            raise AttributeError(name)
        return getattr(self.envs, name)


class Retiring(SteppedToTheEnd):
    """The vector env as evaluation gets it, counting the envs it still emulates."""

    def __init__(self, envs):
        super().__init__(envs)
        self.retired: list[int] = []

    def step(self, actions):
        self.emulated += self.envs.num_envs - len(self.retired)
        return self.envs.step(actions)

    def retire(self, index: int) -> bool:
        self.retired.append(index)
        return self.envs.retire(index)


def played(wrapper, env_cfg: EnvConfig, monkeypatch, episodes: int = 7, num_envs: int = 3):
    made = []

    def make(*args, **kwargs):
        made.append(wrapper(make_vector_env(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(evaluate, "make_vector_env", make)
    torch.manual_seed(0)
    probe = make_vector_env(env_cfg, num_envs=1, seed=0, mode="eval")
    spaces = probe.single_observation_space, probe.single_action_space
    probe.close()
    model = ActorCritic(*spaces, ModelConfig(hidden_sizes=[8])).eval()
    eps = evaluate.play_episodes(model, env_cfg, episodes, greedy=False, seed=11,
                                 num_envs=num_envs)
    return [(e.env_index, e.ret, e.length) for e in eps], made[0]


@pytest.mark.parametrize("backend", ["sync", "envpool"])
def test_retiring_finished_envs_plays_the_same_games_for_less_emulation(backend, monkeypatch):
    env_cfg = EnvConfig(id="CartPole-v1", backend=backend, eval_backend=backend)
    before, full = played(SteppedToTheEnd, env_cfg, monkeypatch)
    after, retiring = played(Retiring, env_cfg, monkeypatch)
    assert after == before and len(after) == 7
    # quotas 3, 2, 2: each env retires when it has played its quota, the last one as the
    # evaluation ends; until then the others were not emulated
    assert sorted(retiring.retired) == [0, 1, 2]
    assert retiring.emulated < full.emulated


@pytest.mark.parametrize("backend", ["sync", "envpool"])
def test_a_retired_env_repeats_its_last_observation_and_the_others_play_on(backend):
    """Env 0 of 3 retired: its row repeats its last observation, no reward, no end; rows 1
    and 2 are those of the same envs stepped without any retirement, through episode ends."""
    cfg = EnvConfig(id="CartPole-v1", backend=backend, eval_backend=backend)
    plain, retired = (make_vector_env(cfg, num_envs=3, seed=3, mode="eval") for _ in range(2))
    rng = np.random.default_rng(0)
    try:
        first = plain.reset(seed=3)
        assert (retired.reset(seed=3) == first).all()
        assert retired.retire(0)
        ends = 0
        for _ in range(300):
            actions = rng.integers(0, 2, 3)
            a = plain.step(actions)
            b = retired.step(actions)
            for x, y in zip(a[:4], b[:4], strict=True):
                assert (np.asarray(x)[1:] == np.asarray(y)[1:]).all()
            assert (b[0][0] == first[0]).all() and b[1][0] == 0 and not b[2][0] and not b[3][0]
            assert [e.env_index for e in b[4]] == [e.env_index for e in a[4] if e.env_index]
            ends += len(b[4])
        assert ends > 0  # the others' episodes ended and restarted in those 300 steps
    finally:
        plain.close()
        retired.close()
