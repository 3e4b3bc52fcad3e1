"""PPO: the loss against a plain per-sample reference, its accounting, the recurrent
consistency of recomputed minibatches, and short real runs."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from actorcritic import train
from actorcritic.algorithms.losses import ppo_loss
from actorcritic.algorithms.ppo import PPOLearner, rollout_targets
from actorcritic.algorithms.reward_scaling import ConstantScale
from actorcritic.config import load_config
from actorcritic.envs import make_vector_env
from actorcritic.errors import ConfigError
from actorcritic.models.actor_critic import build_model
from actorcritic.samplers.rollout import Carry, RolloutBuffer
from actorcritic.samplers.sync import SyncSampler
from actorcritic.schedules import clip_at


def fixed_data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    old_logp = r(n) - 1.0
    logp = (old_logp + 0.3 * r(n)).requires_grad_()
    values = r(n).requires_grad_()
    old_values = (values.detach() + 0.3 * r(n))
    valid = torch.ones(n, dtype=torch.bool)
    valid[[3, 7]] = False
    return dict(logp=logp, old_logp=old_logp, entropy=r(n).abs().requires_grad_(),
                values=values, old_values=old_values, advantages=r(n), returns=r(n),
                valid=valid)


def reference(d, clip, vf, ent, clip_value, normalize):
    """Per-sample Python floats: loss, d loss / d logp, d loss / d value."""
    idx = [i for i in range(len(d["valid"])) if d["valid"][i]]
    n = len(idx)
    adv = {i: float(d["advantages"][i]) for i in idx}
    if normalize:
        mean = sum(adv.values()) / n
        std = math.sqrt(sum((a - mean) ** 2 for a in adv.values()) / n)
        adv = {i: (a - mean) / (std + 1e-8) for i, a in adv.items()}
    loss, g_logp, g_value = 0.0, {}, {}
    for i in idx:
        ratio = math.exp(float(d["logp"][i].detach()) - float(d["old_logp"][i]))
        clipped = min(max(ratio, 1 - clip), 1 + clip)
        a = adv[i]
        # the min picks the clipped term only when it is smaller; then no gradient flows
        uses_clipped = clipped * a < ratio * a
        loss -= min(ratio * a, clipped * a) / n
        g_logp[i] = 0.0 if uses_clipped else -ratio * a / n
        v, old, ret = float(d["values"][i].detach()), float(d["old_values"][i]), float(d["returns"][i])
        err = (v - ret) ** 2
        grad = 2 * (v - ret)
        if clip_value:
            vc = old + min(max(v - old, -clip), clip)
            inside = abs(v - old) < clip
            if (vc - ret) ** 2 > err:
                err, grad = (vc - ret) ** 2, (2 * (vc - ret) if inside else 0.0)
        loss += vf * err / n
        g_value[i] = vf * grad / n
        loss -= ent * float(d["entropy"][i].detach()) / n
    return loss, g_logp, g_value


@pytest.mark.parametrize("clip_value", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_ppo_loss_and_gradient_match_a_per_sample_reference(clip_value, normalize):
    d = fixed_data()
    loss, stats = ppo_loss(d["logp"], d["old_logp"], d["entropy"], d["values"],
                           d["old_values"], d["advantages"], d["returns"], d["valid"],
                           clip_coef=0.2, vf_coef=0.5, ent_coef=0.01,
                           clip_value_loss=clip_value, normalize_advantage=normalize)
    loss.backward()
    want, g_logp, g_value = reference(d, 0.2, 0.5, 0.01, clip_value, normalize)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5, abs=1e-6)
    for i in range(12):
        if not d["valid"][i]:  # reset steps carry no gradient
            assert d["logp"].grad[i] == 0 and d["values"].grad[i] == 0
            continue
        assert float(d["logp"].grad[i]) == pytest.approx(g_logp[i], rel=1e-5, abs=1e-7)
        assert float(d["values"].grad[i]) == pytest.approx(g_value[i], rel=1e-5, abs=1e-7)
        assert float(d["entropy"].grad[i]) == pytest.approx(-0.01 / 10, rel=1e-5)


def test_clip_fraction_and_kl_on_a_constructed_case():
    ratios = torch.tensor([1.0, 1.1, 1.3, 0.7, 0.85, 2.0])
    old = torch.zeros(6)
    logp = ratios.log()
    valid = torch.tensor([True, True, True, True, True, False])  # the 2.0 is a reset step
    zeros = torch.zeros(6)
    _, stats = ppo_loss(logp, old, zeros, zeros, zeros, torch.ones(6), zeros, valid,
                        clip_coef=0.2, vf_coef=0.5, ent_coef=0.0, normalize_advantage=False)
    assert float(stats["losses/clipfrac"]) == pytest.approx(2 / 5)  # 1.3 and 0.7
    kl = sum((r - 1) - math.log(r) for r in [1.0, 1.1, 1.3, 0.7, 0.85]) / 5
    assert float(stats["losses/approx_kl"]) == pytest.approx(kl, rel=1e-6)
    # advantage +1: the clipped ratio 1.2 caps the 1.3 sample; the 0.7 is not capped below
    surrogate = (1.0 + 1.1 + 1.2 + 0.7 + 0.85) / 5
    assert float(stats["losses/policy"]) == pytest.approx(-surrogate, rel=1e-6)


def test_clip_schedule():
    algo = load_config("cartpole-ppo").algo
    assert clip_at(algo, 0.25) == pytest.approx(0.15)
    algo.clip_schedule = "constant"
    assert clip_at(algo, 0.9) == pytest.approx(0.2)


def rollout_of(cfg, steps=48):
    """One real rollout of `cfg` from a fresh model, with episode ends inside it."""
    torch.manual_seed(0)
    envs = make_vector_env(cfg.env, seed=3, mode="train")
    model = build_model(cfg, envs.single_observation_space, envs.single_action_space)
    buf = RolloutBuffer(steps, envs.num_envs, envs.single_observation_space,
                        envs.single_action_space)
    carry = Carry.start(envs.reset(seed=3), model, torch.device("cpu"))
    cfg.algo.num_steps = steps
    sampler = SyncSampler(envs, model, carry, buf, cfg, False, ConstantScale(1.0))
    collected = sampler.next(log_now=False)
    sampler.close()
    return model, collected


@pytest.mark.parametrize("core", ["lstm", "gru"])
def test_recurrent_minibatches_recompute_the_acting_log_probs(core):
    """Before the first step, every minibatch of whole env sequences recomputed from its
    stored start state gives the log-probs and values the policy acted with, across
    episode ends inside a sequence."""
    cfg = load_config("cartpole-ppo", overrides=[
        f"model.core={core}", "model.core_size=16", "env.num_envs=6", "env.backend=sync",
        "algo.minibatches=3", "model.shared_trunk=true"])
    model, collected = rollout_of(cfg)
    buf = collected.rollout().buffer
    assert buf.first[1:-1].any(), "the rollout should contain an episode start"
    learner = PPOLearner(model, torch.optim.Adam(model.parameters()), cfg,
                         torch.device("cpu"), lambda: 0.0)
    rng = np.random.default_rng(0)
    seen = []
    with torch.no_grad():
        for index in learner._minibatches(rng, buf):
            logp, _, values, pick = learner.minibatch_forward(buf, index)
            torch.testing.assert_close(logp, pick(buf.logp), rtol=0, atol=2e-6)
            torch.testing.assert_close(values, pick(buf.values), rtol=0, atol=2e-6)
            seen += index.tolist()
    assert sorted(seen) == list(range(6))
    old_values, _, _ = rollout_targets(model, buf, 0.99, 0.95)
    torch.testing.assert_close(old_values, buf.values, rtol=0, atol=2e-6)


def test_feedforward_minibatches_cover_each_step_once_per_epoch():
    cfg = load_config("cartpole-ppo", overrides=["env.backend=sync", "algo.minibatches=5"])
    model, collected = rollout_of(cfg, steps=10)
    learner = PPOLearner(model, torch.optim.Adam(model.parameters()), cfg,
                         torch.device("cpu"), lambda: 0.0)
    parts = list(learner._minibatches(np.random.default_rng(1), collected.rollout().buffer))
    assert len(parts) == 5
    assert sorted(torch.cat(parts).tolist()) == list(range(10 * 8))
    with torch.no_grad():
        logp, _, _, pick = learner.minibatch_forward(collected.rollout().buffer, parts[0])
    torch.testing.assert_close(logp, pick(collected.rollout().buffer.logp), rtol=0, atol=2e-6)


@pytest.mark.parametrize("encoder,core", [("nature_cnn", "none"), ("small_cnn", "lstm")])
def test_frames_converted_once_give_the_minibatches_of_the_plain_path(encoder, core):
    """The learner converts a rollout's uint8 frames once (`model.learner_obs`) instead of
    once per epoch; every minibatch's log-probs, values and gradients stay bit for bit
    those of the frames as stored."""
    import gymnasium as gym

    from actorcritic.models.encoders import image_input, prepared_frames

    obs_space = gym.spaces.Box(0, 255, (4, 42, 42), np.uint8)
    cfg = load_config("pong-ppo", overrides=[
        f"model.encoder={encoder}", f"model.core={core}", "model.core_size=16",
        "env.num_envs=4", "algo.minibatches=2"])
    torch.manual_seed(0)
    model = build_model(cfg, obs_space, gym.spaces.Discrete(6))
    buf = RolloutBuffer(6, 4, obs_space, gym.spaces.Discrete(6))
    g = torch.Generator().manual_seed(1)
    buf.obs.copy_(torch.randint(0, 256, buf.obs.shape, generator=g, dtype=torch.uint8))
    buf.actions.copy_(torch.randint(0, 6, buf.actions.shape, generator=g))
    buf.first[2, 1] = True
    buf.start_state = tuple(torch.randn(s.shape, generator=g)
                            for s in model.initial_state(4))
    prepared = model.learner_obs(buf.obs)
    assert torch.equal(prepared, buf.obs.float() / 255)
    flat = prepared[:6].reshape(24, 4, 42, 42)[torch.tensor([5, 0, 17])]
    assert flat.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(image_input(flat), prepared_frames(buf.obs[:6].reshape(24, 4, 42, 42))
                       [torch.tensor([5, 0, 17])])
    learner = PPOLearner(model, torch.optim.Adam(model.parameters()), cfg,
                         torch.device("cpu"), lambda: 0.0)
    for index in learner._minibatches(np.random.default_rng(2), buf):
        results = []
        for obs in (None, prepared):
            model.zero_grad(set_to_none=True)
            logp, entropy, values, _ = learner.minibatch_forward(buf, index, obs)
            (logp.sum() + values.sum() + entropy.sum()).backward()
            results.append([logp, values] + [p.grad.clone() for p in model.parameters()])
        for plain, once in zip(*results, strict=True):
            assert torch.equal(plain, once)


def test_target_kl_ends_the_epochs_early(tmp_path):
    summary = train("cartpole-ppo", tmp_path / "run", quiet=True, overrides=[
        "run.total_steps=2560", "run.eval_episodes=0", "run.eval_every=0", "run.log_every=1",
        "algo.target_kl=0.0001", "algo.lr=0.01", "algo.lr_schedule=constant"])
    assert summary["status"] == "finished"
    import csv
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    epochs = [float(r["diag/ppo_epochs"]) for r in rows]
    assert min(epochs) < 20  # stopped early at least once (20 epochs configured)
    assert all(float(r["losses/clipfrac"]) >= 0 for r in rows)


@pytest.mark.slow
def test_cartpole_ppo_learns(tmp_path):
    """The shipped preset: a greedy evaluation of 475 within its 100k-step budget."""
    summary = train("cartpole-ppo", tmp_path / "run", quiet=True)
    assert summary["env_steps"] <= 100_000
    assert summary["eval"]["mean_return"] >= 475, summary


@pytest.mark.parametrize("placement", [[], ["algo.overlap=true"]])
def test_ppo_runs_on_the_sync_and_overlapped_samplers(tmp_path, placement):
    summary = train("cartpole-ppo", tmp_path / "run", quiet=True, overrides=[
        "run.total_steps=3000", "run.eval_episodes=0", "run.eval_every=0", *placement])
    assert summary["status"] == "finished" and summary["env_steps"] >= 3000


@pytest.mark.parametrize("sets,match", [
    (["run.backend=ray", "algo.overlap=true"], "algo.name=ppo has no 'overlap' placement on ray"),
    (["algo.processes=2"], "processes on local: algo.name=a2c"),
    (["model.core=lstm", "algo.minibatches=16"], "must be <= env.num_envs"),
])
def test_ppo_placements_it_cannot_use_are_refused_with_the_reason(sets, match):
    with pytest.raises(ConfigError, match=match):
        load_config("cartpole-ppo", overrides=sets)


def test_acting_graph_reuse_is_refused_for_ppo_and_says_so(tmp_path, capsys):
    train("cartpole-ppo", tmp_path / "run", overrides=[
        "run.total_steps=600", "run.eval_episodes=0", "run.eval_every=0",
        "algo.reuse_acting_graph=on"])
    err = capsys.readouterr()
    assert "acting-graph reuse refused: PPO" in err.out + err.err


def test_namespace_batches_work_like_the_buffer():
    """`buf.to(device)` on an accelerator gives a namespace; the learner reads only its
    fields (checked here with a namespace on the CPU)."""
    cfg = load_config("cartpole-ppo", overrides=["env.backend=sync"])
    model, collected = rollout_of(cfg, steps=8)
    buf = collected.rollout().buffer
    ns = types.SimpleNamespace(**{n: getattr(buf, n) for n in buf.NAMES},
                               start_state=buf.start_state, num_steps=8, num_envs=8)
    a = rollout_targets(model, buf, 0.99, 0.9)
    b = rollout_targets(model, ns, 0.99, 0.9)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("clip_value", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_numpy_ppo_update_equals_the_torch_learner(clip_value, shared):
    """run.numpy_update's PPO (hand-derived gradients) against the torch learner: the same
    parameters after three whole updates (3 epochs x 4 minibatches each), and the same
    statistics."""
    import copy

    from actorcritic.accelerators.numpy_ppo import NumpyPPOLearner
    from actorcritic.accelerators.numpy_update import NumpyA2CUpdate
    from actorcritic.algorithms.update import make_optimizer

    cfg = load_config("cartpole-ppo", overrides=[
        "env.backend=sync", "algo.epochs=3", "algo.minibatches=4", "algo.ent_coef=0.01",
        f"algo.clip_value_loss={clip_value}", f"model.shared_trunk={shared}",
        "algo.lr=0.003"])
    model, collected = rollout_of(cfg, steps=16)
    twin = copy.deepcopy(model)
    torch_learner = PPOLearner(model, make_optimizer(model.parameters(), cfg.algo), cfg,
                               torch.device("cpu"), lambda: 0.3)
    numpy_learner = NumpyPPOLearner(
        NumpyA2CUpdate(twin, make_optimizer(twin.parameters(), cfg.algo), cfg.algo), cfg,
        lambda: 0.3)
    for update in range(3):
        want = torch_learner.update(collected, update, log_now=True)
        got = numpy_learner.update(collected, update, log_now=True)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=2e-5, msg=name)
    for key in ("losses/policy", "losses/value", "losses/entropy", "losses/approx_kl",
                "losses/clipfrac", "diag/grad_norm", "diag/explained_variance"):
        assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-3, abs=1e-5), key
    assert float(want["losses/clipfrac"]) > 0  # the clipped branch was exercised
