"""Models: recurrent cores are consistent between acting and training, heads are exact."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from actorcritic.algorithms.reward_scaling import ConstantScale
from actorcritic.algorithms.update import reuses_acting_graph, rollout_loss
from actorcritic.config import AlgoConfig, EnvConfig, ModelConfig
from actorcritic.envs import make_vector_env
from actorcritic.envs.actions import ActionAdapter
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.models.encoders import image_input
from actorcritic.models.heads import make_head
from actorcritic.samplers.rollout import Carry, RolloutBuffer, collect_rollout

OBS = gym.spaces.Box(-1, 1, (3,), np.float32)
ACT = gym.spaces.Discrete(4)


@pytest.mark.parametrize("core", ["lstm", "gru"])
@pytest.mark.parametrize("shared", [True, False])
def test_sequence_equals_steps_with_resets(core, shared):
    torch.manual_seed(0)
    model = ActorCritic(OBS, ACT, ModelConfig(core=core, core_size=16, hidden_sizes=[8],
                                              shared_trunk=shared))
    T, N = 9, 3
    obs = torch.randn(T, N, 3)
    first = torch.rand(T, N) < 0.3
    first[0] = True
    state = model.initial_state(N)
    params_seq, values_seq, state_seq = model(obs, first, state)
    step_state = state
    for t in range(T):
        p, v, step_state = model(obs[t:t + 1], first[t:t + 1], step_state)
        torch.testing.assert_close(p[0], params_seq[t], atol=1e-6, rtol=0)
        torch.testing.assert_close(v[0], values_seq[t], atol=1e-6, rtol=0)
    for a, b in zip(step_state, state_seq):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("core", ["lstm", "gru", "none"])
def test_training_recompute_equals_acting_across_episode_ends(core):
    """Collect real rollouts on short episodes (several ends inside each rollout), then
    recompute log-probs and values as training does: they equal what acting computed."""
    torch.manual_seed(1)
    env_cfg = EnvConfig(id="CartPole-v1", num_envs=3, backend="sync", max_episode_steps=7,
                        hide_obs=[1, 3])
    envs = make_vector_env(env_cfg, seed=3)
    model = ActorCritic(envs.single_observation_space, envs.single_action_space,
                        ModelConfig(core=core, core_size=16, hidden_sizes=[16]))
    buf = RolloutBuffer(20, 3, envs.single_observation_space, envs.single_action_space, "cpu")
    carry = Carry.start(envs.reset(seed=3), model, torch.device("cpu"))
    try:
        for _ in range(3):  # the carried state crosses rollouts too
            collect_rollout(envs, model, buf, carry, ActionAdapter(envs.single_action_space))
            assert (~buf.valid).any() and buf.first[1:].any()  # episode ends inside
            with torch.no_grad():
                params, values, _ = model(buf.obs, buf.first, buf.start_state)
                logp, _ = model.policy.log_prob_entropy(params[:-1], buf.actions)
            torch.testing.assert_close(logp, buf.logp, atol=1e-5, rtol=0)
            torch.testing.assert_close(values[:-1], buf.values, atol=1e-5, rtol=0)
            loss, _ = rollout_loss(model, buf, AlgoConfig())
            assert torch.isfinite(loss)
    finally:
        envs.close()


@pytest.mark.parametrize("env_id,backend,model_cfg", [
    ("CartPole-v1", "sync", ModelConfig(hidden_sizes=[16], shared_trunk=False)),
    # replayed; float32 on every host (bfloat16's replay: test_replay.py)
    ("PongNoFrameskip-v4", "envpool", ModelConfig(encoder="nature_cnn", precision="float32"))])
def test_acting_graph_gives_the_recomputed_loss_and_gradient(env_id, backend, model_cfg):
    """A2C's acting-graph reuse backpropagates through the passes made while acting (kept
    graphs for MLPs, replayed layer outputs for CNNs): on the same rollout (with episode
    ends inside) the loss and every gradient equal those of recomputing the rollout."""
    torch.manual_seed(2)
    env_cfg = EnvConfig(id=env_id, num_envs=3, backend=backend, max_episode_steps=6)
    envs = make_vector_env(env_cfg, seed=5)
    model = ActorCritic(envs.single_observation_space, envs.single_action_space, model_cfg)
    cfg = AlgoConfig(normalize_advantage=True, gae_lambda=0.9, ent_coef=0.01)
    buf = RolloutBuffer(12, 3, envs.single_observation_space, envs.single_action_space, "cpu")
    carry = Carry.start(envs.reset(seed=5), model, torch.device("cpu"))
    try:
        for _ in range(2):
            rollout = collect_rollout(envs, model, buf, carry,
                                      ActionAdapter(envs.single_action_space), keep_graph=True)
            assert (~buf.valid).any() and buf.truncated.any()
            grads = []
            for kept in (rollout.acted, None):
                model.zero_grad(set_to_none=True)
                loss, _ = rollout_loss(model, buf, cfg, acted=kept)
                loss.backward()
                grads.append([p.grad.clone() for p in model.parameters()])
            for reused, recomputed in zip(*grads):
                # float rounding only: the kernels differ with the batch size
                assert (reused - recomputed).norm() <= 1e-4 * recomputed.norm() + 1e-7
            torch.testing.assert_close(rollout.acted.values[:-1].detach(), buf.values, atol=1e-5,
                                       rtol=0)
    finally:
        envs.close()


def test_acting_graph_reuse_is_chosen_for_feedforward_cnns():
    image = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    vector = gym.spaces.Box(-1, 1, (4,), np.float32)
    actions = gym.spaces.Discrete(3)

    def chosen(space, setting, **model_kw):
        model = ActorCritic(space, actions, ModelConfig(**model_kw))
        return reuses_acting_graph(model, AlgoConfig(reuse_acting_graph=setting))

    assert chosen(image, "auto", encoder="nature_cnn")
    assert not chosen(vector, "auto")
    assert chosen(vector, "on")
    assert not chosen(image, "off", encoder="nature_cnn")
    assert not chosen(image, "on", encoder="small_cnn", core="lstm", core_size=8)


def test_reset_step_is_masked_and_state_resets_after_it():
    env_cfg = EnvConfig(id="CartPole-v1", num_envs=1, backend="sync", max_episode_steps=4)
    envs = make_vector_env(env_cfg, seed=0)
    model = ActorCritic(envs.single_observation_space, envs.single_action_space,
                        ModelConfig(core="lstm", core_size=4, hidden_sizes=[4]))
    buf = RolloutBuffer(10, 1, envs.single_observation_space, envs.single_action_space, "cpu")
    carry = Carry.start(envs.reset(seed=0), model, torch.device("cpu"))
    collect_rollout(envs, model, buf, carry, ActionAdapter(envs.single_action_space))
    envs.close()
    # steps 0-3 are the episode (truncated at step 3), step 4 is the reset step
    assert buf.truncated[3, 0] and not buf.valid[4, 0] and buf.valid[:4, 0].all()
    assert buf.first[0, 0] and buf.first[5, 0] and not buf.first[1:5, 0].any()


def test_reward_scale_scales_what_is_learned_not_the_episode_statistics():
    env_cfg = EnvConfig(id="CartPole-v1", num_envs=2, backend="sync", max_episode_steps=4)
    envs = make_vector_env(env_cfg, seed=0)
    model = ActorCritic(envs.single_observation_space, envs.single_action_space, ModelConfig())
    buf = RolloutBuffer(10, 2, envs.single_observation_space, envs.single_action_space, "cpu")
    carry = Carry.start(envs.reset(seed=0), model, torch.device("cpu"))
    episodes = collect_rollout(envs, model, buf, carry, ActionAdapter(envs.single_action_space),
                               rewards=ConstantScale(0.01)).episodes
    envs.close()
    assert torch.equal(buf.rewards[buf.valid], torch.full((int(buf.valid.sum()),), 0.01))
    assert len(episodes) == 4 and all(e.ret == 4.0 and e.length == 4 for e in episodes)


def test_multidiscrete_and_gaussian_heads_match_torch_distributions():
    torch.manual_seed(0)
    head = make_head(5, gym.spaces.MultiDiscrete([3, 4]))
    feats = torch.randn(6, 5)
    params = head(feats)
    actions = head.sample(params)
    logp, ent = head.log_prob_entropy(params, actions)
    d1 = torch.distributions.Categorical(logits=params[:, :3])
    d2 = torch.distributions.Categorical(logits=params[:, 3:])
    torch.testing.assert_close(logp, d1.log_prob(actions[:, 0]) + d2.log_prob(actions[:, 1]))
    torch.testing.assert_close(ent, d1.entropy() + d2.entropy())

    head = make_head(5, gym.spaces.Box(-1, 1, (2,), np.float32))
    params = head(feats)
    actions = head.sample(params)
    logp, ent = head.log_prob_entropy(params, actions)
    normal = torch.distributions.Normal(params[:, :2], params[:, 2:].exp())
    torch.testing.assert_close(logp, normal.log_prob(actions).sum(-1))
    torch.testing.assert_close(ent, normal.entropy().sum(-1))


def test_categorical_sampling_follows_the_probabilities():
    head = make_head(2, gym.spaces.Discrete(3))
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3])).expand(20000, 3)
    torch.manual_seed(0)
    counts = torch.bincount(head.sample(logits), minlength=3).float() / 20000
    torch.testing.assert_close(counts, torch.tensor([0.2, 0.5, 0.3]), atol=0.015, rtol=0)


def test_image_input_scales_frames_and_leaves_float_inputs_alone():
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    x = image_input(frames)
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, frames.float() / 255.0)
    assert frames.dtype == torch.uint8  # the caller's frames are not touched
    floats = torch.rand(2, 3, 42, 42)
    kept = floats.clone()
    assert torch.equal(image_input(floats), kept) and torch.equal(floats, kept)
