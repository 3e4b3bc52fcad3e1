"""SAC and TD3, exactly: critic targets, actor and temperature losses, target smoothing and
the squashed Gaussian's log-probability against plain per-sample computations on fixed data
(with a terminated and a truncated transition); the replay buffer's indexing across its
wrap-around and across episode ends; the refusals of bad configs; the model's spaces."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from actorcritic import load_config
from actorcritic.algorithms.sac import sac_actor_loss, sac_alpha_loss, sac_critic_target
from actorcritic.algorithms.td3 import (
    smoothed_target_action,
    td3_actor_loss,
    td3_critic_target,
)
from actorcritic.algorithms.twin_critics import polyak_update, twin_critic_loss
from actorcritic.envs.vector import GymVecEnv
from actorcritic.errors import ConfigError
from actorcritic.models.actor_critic import build_model
from actorcritic.models.off_policy import OffPolicyActorCritic, TwinQ, squashed_log_prob
from actorcritic.samplers.replay import ReplaySampler
from actorcritic.samplers.replay_buffer import ReplayBuffer

GAMMA = 0.9
# Four transitions: ordinary, terminated, truncated (stored as not terminated), ordinary.
REWARDS = [1.0, -2.0, 0.5, 3.0]
TERMINATED = [False, True, False, False]
NEXT_Q = [[1.0, 4.0, -1.0, 2.0], [2.0, 3.0, -3.0, 2.5]]  # twin target critics at (s', a')
NEXT_LOGP = [-0.5, 0.2, 1.0, -1.5]
ALPHA = 0.3


def t(values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


def test_sac_critic_target_against_a_plain_loop():
    got = sac_critic_target(t(REWARDS), t(TERMINATED, torch.bool), t(NEXT_Q), t(NEXT_LOGP),
                            torch.tensor(ALPHA), GAMMA)
    want = []
    for i in range(4):
        soft_value = min(NEXT_Q[0][i], NEXT_Q[1][i]) - ALPHA * NEXT_LOGP[i]
        want.append(REWARDS[i] + (0.0 if TERMINATED[i] else GAMMA * soft_value))
    assert got.tolist() == pytest.approx(want, abs=1e-6)
    # the terminated one has no future; the truncated one bootstraps from its next obs
    assert got[1].item() == pytest.approx(-2.0)
    assert got[2].item() == pytest.approx(0.5 + GAMMA * (-3.0 - ALPHA * 1.0))


def test_td3_critic_target_against_a_plain_loop():
    got = td3_critic_target(t(REWARDS), t(TERMINATED, torch.bool), t(NEXT_Q), GAMMA)
    want = [REWARDS[i] + (0.0 if TERMINATED[i] else GAMMA * min(NEXT_Q[0][i], NEXT_Q[1][i]))
            for i in range(4)]
    assert got.tolist() == pytest.approx(want, abs=1e-6)


def test_twin_critic_loss_is_the_sum_of_both_mean_squared_errors():
    q = t([[1.0, 2.0, 3.0], [0.0, 2.0, 5.0]])
    target = t([1.5, 1.0, 3.0])
    want = sum(sum((q[k, i].item() - target[i].item()) ** 2 for i in range(3)) / 3
               for k in range(2))
    assert twin_critic_loss(q, target).item() == pytest.approx(want)


def test_sac_actor_and_temperature_losses_against_a_plain_computation():
    q = t([[1.0, -2.0, 0.5], [0.5, -1.0, 2.0]])
    logp = t([-1.0, 0.5, 2.0])
    want_actor = sum(ALPHA * logp[i].item() - min(q[0, i].item(), q[1, i].item())
                     for i in range(3)) / 3
    assert sac_actor_loss(q, logp, torch.tensor(ALPHA)).item() == pytest.approx(want_actor)
    log_alpha = torch.tensor(math.log(ALPHA), requires_grad=True)
    loss = sac_alpha_loss(log_alpha, logp, target_entropy=-1.0)
    want = -sum(math.log(ALPHA) * (logp[i].item() - 1.0) for i in range(3)) / 3
    assert loss.item() == pytest.approx(want)
    loss.backward()  # d/dlog_alpha = -mean(logp + target): entropy below target raises alpha
    assert log_alpha.grad.item() == pytest.approx(-(logp.mean().item() - 1.0))


def test_td3_actor_loss_and_target_smoothing():
    assert td3_actor_loss(t([1.0, 2.0, 6.0])).item() == pytest.approx(-3.0)
    action = t([[0.9, -0.2], [0.0, -0.95]])
    noise = t([[0.3, -0.8], [-0.1, 0.2]])
    got = smoothed_target_action(action, noise, noise_clip=0.5)
    want = [min(1.0, 0.9 + 0.3), -0.2 - 0.5, 0.0 - 0.1, -0.95 + 0.2]
    assert got.flatten().tolist() == pytest.approx(want)


def test_squashed_log_prob_is_the_change_of_variables_of_a_gaussian():
    mean, log_std = t([[0.3, -1.0]]), t([[-0.5, 0.2]])
    u = t([[1.2, -0.4]])
    got = squashed_log_prob(u, mean, log_std).item()
    want = 0.0
    for k in range(2):
        std = math.exp(log_std[0, k].item())
        z = (u[0, k].item() - mean[0, k].item()) / std
        want += -0.5 * z * z - math.log(std) - 0.5 * math.log(2 * math.pi)
        want -= math.log(1 - math.tanh(u[0, k].item()) ** 2)
    assert got == pytest.approx(want, abs=1e-5)


def test_polyak_update_moves_targets_by_tau():
    target, online = [t([1.0, 2.0]), t([[0.0]])], [t([3.0, 0.0]), t([[10.0]])]
    polyak_update(target, online, tau=0.25)
    assert target[0].tolist() == [1.5, 1.5] and target[1].tolist() == [[2.5]]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_twin_q_members_are_independent_networks(activation):
    critics = TwinQ(5, [7, 7], activation)
    obs, action = torch.randn(4, 3), torch.randn(4, 2)
    q = critics(obs, action)
    assert q.shape == (2, 4)
    x = torch.cat([obs, action], -1)
    for k, net in enumerate((critics.q1, critics.q2)):
        h = x
        for i, layer in enumerate(net.layers):
            h = layer(h)
            if i < len(net.layers) - 1:
                h = torch.relu(h) if activation == "relu" else torch.tanh(h)
        assert torch.allclose(q[k], h.squeeze(-1), atol=1e-6)
    assert not torch.equal(q[0], q[1])


# ---------------------------------------------------------------- the replay buffer

def box(n: int) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)


def test_replay_buffer_wraps_around_and_keeps_the_newest():
    buf = ReplayBuffer(5, box(2), 1)
    for start in (0, 3, 6):  # 3 + 3 + 3 transitions into 5 rows
        k = np.arange(start, start + 3)
        buf.add(np.stack([k, k], 1), k[:, None] * 0.5, k * 1.0, np.stack([k + 1, k + 1], 1),
                k % 4 == 0)
    assert buf.size == 5 and buf.pos == 4
    # rows 0..3 were overwritten by transitions 5..8, row 4 holds transition 4
    assert buf.rewards.tolist() == [5.0, 6.0, 7.0, 8.0, 4.0]
    assert buf.obs[:, 0].tolist() == [5.0, 6.0, 7.0, 8.0, 4.0]
    assert buf.next_obs[:, 0].tolist() == [6.0, 7.0, 8.0, 9.0, 5.0]
    assert buf.terminated.tolist() == [False, False, False, True, True]
    torch.manual_seed(0)
    batch = buf.sample(64)
    # every sampled transition is whole: its fields come from the same row
    assert torch.equal(batch["obs"][:, 0] + 1, batch["next_obs"][:, 0])
    assert torch.equal(batch["obs"][:, 0], batch["rewards"])
    assert set(batch["rewards"].tolist()) <= {4.0, 5.0, 6.0, 7.0, 8.0}


def test_replay_buffer_checkpoint_state_round_trips():
    buf = ReplayBuffer(4, box(1), 2)
    buf.add(np.ones((6, 1)) * np.arange(6)[:, None], np.zeros((6, 2)), np.arange(6.0),
            np.zeros((6, 1)), np.zeros(6, bool))
    copy = ReplayBuffer(4, box(1), 2)
    copy.load(buf.state_tensors(), buf.pos, buf.size)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
        assert torch.equal(getattr(copy, name), getattr(buf, name))
    assert (copy.pos, copy.size) == (2, 4)


class Walk(gym.Env):
    """obs = the step within the episode; episodes of 3 steps, ending terminated when the
    action is positive at the last step and truncated otherwise."""

    observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t == 3
        return (np.full(1, self.t, np.float32), float(self.t), end and action[0] > 0,
                end and action[0] <= 0, {})


def test_the_sampler_stores_whole_transitions_and_never_a_reset_step():
    cfg = load_config("pendulum-sac", ["algo.learning_starts=1000", "algo.train_freq=8",
                                       "env.num_envs=2"])
    envs = GymVecEnv([lambda: gym.wrappers.RecordEpisodeStatistics(Walk())] * 2)
    model = build_model(cfg, envs.single_observation_space, envs.single_action_space)
    buf = ReplayBuffer(100, envs.single_observation_space, 1)
    torch.manual_seed(3)
    sampler = ReplaySampler(envs, model, buf, cfg, 0, envs.reset(seed=1), np.zeros(2, bool))
    collected = sampler.next(log_now=True)
    envs.close()
    assert collected.steps == 16 and collected.replay().gradient_steps == 0  # before start
    # 8 vector steps per env: steps 1-3, reset, 1-3, reset -> 6 transitions each
    assert buf.size == 12
    rows = buf.obs[:12, 0], buf.next_obs[:12, 0], buf.rewards[:12], buf.terminated[:12]
    for obs, nxt, reward, terminated in zip(*rows):
        assert nxt == obs + 1 and reward == nxt  # never across an episode boundary
        if nxt < 3:
            assert not terminated
    acted = buf.actions[:12, 0]
    final = buf.next_obs[:12, 0] == 3
    assert torch.equal(buf.terminated[:12][final], acted[final] > 0)  # truncated: not terminal
    assert len(collected.episodes[0][1]) == 4


# ---------------------------------------------------------------- configs and spaces

@pytest.mark.parametrize("override, message", [
    (["algo.num_steps=16"], "algo.num_steps is for on-policy algorithms"),
    (["algo.ent_coef=0.1", "algo.epochs=3"], "algo.ent_coef, algo.epochs are for on-policy"),
    (["model.core=lstm"], "has no recurrent policies"),
    (["algo.batch_size=512", "algo.buffer_size=256"], "algo.batch_size (512) must be at most"),
    (["algo.overlap=true"], "algo.name=sac has no 'overlap' placement"),
    (["algo.tau=0"], "algo.tau must be > 0"),
])
def test_bad_off_policy_configs_are_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("pendulum-sac", override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_off_policy_key_with_an_on_policy_algorithm_is_refused():
    with pytest.raises(ConfigError, match="algo.buffer_size is for off-policy"):
        load_config("cartpole-a2c", ["algo.buffer_size=1000"])


def test_sac_on_discrete_actions_and_image_observations_is_refused():
    from actorcritic.training import train

    with pytest.raises(ConfigError, match="is for continuous .Box. actions; CartPole-v1 has "
                                          "Discrete actions"):
        train(load_config("pendulum-sac", ["env.id=CartPole-v1"]), "/nonexistent/run")
    cfg = load_config("pendulum-sac")
    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    with pytest.raises(ConfigError, match="takes vector observations"):
        build_model(cfg, frames, gym.spaces.Box(-1, 1, (2,), np.float32))


def test_a_replay_buffer_larger_than_memory_is_refused_with_both_sizes(tmp_path):
    from actorcritic.training import train

    cfg = load_config("pendulum-sac", ["algo.buffer_size=100000000000"])
    with pytest.raises(ConfigError) as err:
        train(cfg, tmp_path / "run")
    line = str(err.value)
    assert "algo.buffer_size=100,000,000,000 transitions of Pendulum-v1 need" in line
    assert "GiB available" in line and not (tmp_path / "run").exists()


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_actions_are_in_the_box_and_greedy_is_deterministic(algo):
    cfg = load_config("pendulum-sac", [f"algo.name={algo}"])
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    model = build_model(cfg, box(3), space)
    assert isinstance(model, OffPolicyActorCritic)
    obs = torch.randn(500, 3) * 5
    action, logp, value, state = model.act(obs, None, ())
    assert action.shape == (500, 2) and value is None and state == ()
    assert (action[:, 0].abs() <= 2).all() and ((action[:, 1] >= 0) & (action[:, 1] <= 1)).all()
    greedy = model.act(obs, None, (), greedy=True)[0]
    assert torch.equal(greedy, model.act(obs, None, (), greedy=True)[0])
    assert not torch.equal(greedy, action)


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_one_learner_step_computes_its_critic_loss_from_the_target_networks(algo):
    """The learner's wiring: its critic loss on a fixed batch equals the loss written out
    here from the target networks it holds, with the batch's terminated flags."""
    from actorcritic.algorithms.sac import SACLearner
    from actorcritic.algorithms.td3 import TD3Learner

    cfg = load_config("pendulum-sac", [f"algo.name={algo}", "model.hidden_sizes=[16,16]",
                                       "algo.gamma=0.9", "algo.reward_scale=2.0"])
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    torch.manual_seed(0)
    model = build_model(cfg, box(3), space)
    learner = (SACLearner if algo == "sac" else TD3Learner)(model, cfg, torch.device("cpu"), 1)
    batch = {"obs": torch.randn(6, 3), "actions": torch.rand(6, 1) * 4 - 2,
             "rewards": torch.randn(6), "next_obs": torch.randn(6, 3),
             "terminated": torch.tensor([False, True, False, False, True, False])}
    torch.manual_seed(1)  # the noise the learner will draw for its target
    with torch.no_grad():  # written out before the step moves actor, critics and targets
        if algo == "sac":
            a, logp = model.sample_action(batch["next_obs"])
            q = learner.target_critics(batch["next_obs"], a)
            soft = q.min(0).values - 1.0 * logp  # alpha starts at init_alpha = 1
        else:
            unit = learner.target.policy(learner.target.features(batch["next_obs"]))
            noise = (torch.randn(unit.shape) * 0.2).clamp(-0.5, 0.5)
            a = (unit + noise).clamp(-1, 1) * 2.0
            soft = learner.target.critics(batch["next_obs"], a).min(0).values
        y = torch.stack([2.0 * batch["rewards"][i]
                         + (0.0 if batch["terminated"][i] else 0.9 * soft[i]) for i in range(6)])
        q = model.critics(batch["obs"], batch["actions"])
        want = sum(((q[k] - y) ** 2).mean() for k in range(2))
    torch.manual_seed(1)
    stats = learner.gradient_step(batch, update=1)
    assert learner.gradient_steps == 1
    assert "losses/critic" in stats and "diag/q_mean" in stats
    assert stats["losses/critic"].item() == pytest.approx(want.item(), rel=1e-5)
