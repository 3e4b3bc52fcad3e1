"""Replay: the recorded acting passes give the recomputed rollout's loss and gradients."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from actorcritic.accelerators.replay import recording, replay, supports_replay
from actorcritic.algorithms.update import rollout_loss
from actorcritic.config import AlgoConfig, ModelConfig
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.samplers.rollout import RolloutBuffer

T, N = 4, 3
ACTIONS = gym.spaces.Discrete(5)


def image_rollout(space: gym.spaces.Box, seed: int) -> RolloutBuffer:
    rng = np.random.default_rng(seed)
    buf = RolloutBuffer(T, N, space, ACTIONS)
    b = buf.np
    b.obs[:] = rng.integers(0, 256, b.obs.shape)
    b.actions[:] = rng.integers(0, 5, (T, N))
    b.rewards[:] = rng.normal(size=(T, N))
    b.terminated[:] = rng.random((T, N)) < 0.2
    b.valid[:] = rng.random((T, N)) > 0.2
    return buf


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("encoder,shape,shared", [
    ("nature_cnn", (4, 84, 84), True), ("small_cnn", (1, 42, 42), False)])
def test_replayed_acting_passes_give_the_recomputed_gradients(encoder, shape, shared,
                                                              precision):
    """Under bfloat16 both sides run the encoder's backward in bfloat16 (the recomputed one
    through autocast), so they agree to bfloat16 rounding."""
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    model = ActorCritic(space, ACTIONS, ModelConfig(encoder=encoder, shared_trunk=shared,
                                                    cnn_channels=8, cnn_dense=16,
                                                    precision=precision))
    tol = dict(atol=1e-6, rtol=1e-4) if precision == "float32" else dict(atol=1e-4, rtol=2e-2)
    assert supports_replay(model)
    buf = image_rollout(space, 1)
    cfg = AlgoConfig(ent_coef=0.01, gae_lambda=0.95, normalize_advantage=True)
    with torch.no_grad():
        with recording(model) as rec:
            acting = [model(buf.obs[t][None], buf.first[t][None], ()) for t in range(T)]
        bootstrap = model(buf.obs[T][None], buf.first[T][None], ())[1]
    expected = torch.float32 if precision == "float32" else torch.bfloat16
    assert all(out.dtype == expected for out in rec.steps[0][0][1:])  # the ReLU outputs
    params, values = replay(model, rec, T, N)
    # the replayed outputs are the acting ones
    torch.testing.assert_close(params.detach(), torch.cat([a[0] for a in acting]))
    torch.testing.assert_close(values.detach(), torch.cat([a[1] for a in acting]))
    grads = []
    for acted in ((params, torch.cat([values, bootstrap])), None):
        model.zero_grad(set_to_none=True)
        loss, _ = rollout_loss(model, buf, cfg, acted=acted)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    replayed, recomputed = grads
    assert replayed.keys() == recomputed.keys()
    for name in recomputed:
        assert recomputed[name].abs().max() > 0, name
        torch.testing.assert_close(replayed[name], recomputed[name], **tol, msg=name)
        assert replayed[name].dtype == torch.float32


def test_recording_stops_with_the_block():
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 255, (1, 42, 42), np.uint8)
    model = ActorCritic(space, ACTIONS, ModelConfig(encoder="small_cnn", cnn_channels=4,
                                                    cnn_dense=8, shared_trunk=False))
    obs = torch.zeros(1, 2, 1, 42, 42, dtype=torch.uint8)
    first = torch.zeros(1, 2, dtype=torch.bool)
    with torch.no_grad():
        with recording(model) as rec:
            model(obs, first, ())
        model(obs, first, ())
    assert [len(steps) for steps in rec.steps] == [1, 1]  # actor and critic, one pass each
    assert len(rec.steps[0][0]) == 5  # the input and the four ReLU outputs


def test_only_feedforward_cnn_stacks_are_replayed():
    image = gym.spaces.Box(0, 255, (1, 42, 42), np.uint8)
    vector = gym.spaces.Box(-1, 1, (4,), np.float32)
    assert not supports_replay(ActorCritic(vector, ACTIONS, ModelConfig()))
    recurrent = ActorCritic(image, ACTIONS, ModelConfig(encoder="small_cnn", core="lstm",
                                                        core_size=8))
    assert not supports_replay(recurrent)
    with pytest.raises(ValueError, match="feedforward CNN"):
        with recording(recurrent):
            pass

