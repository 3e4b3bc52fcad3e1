"""model.precision: the CNN encoder under bfloat16 autocast, everything else float32; `auto`
(the default) picks bfloat16 for the built-in CNNs on a CPU with AMX or AVX512-BF16.

The replayed gradient under bfloat16 is checked against autocast's own in test_replay.py;
here: bfloat16 gradients point where the float32 ones do, the rest of the model stays
float32, what `auto` picks on which CPU and device and the start line that says so, the
CLI refuses bfloat16 for on-policy MLP encoders, it may change on resume, and a real Pong
run trains with it. For SAC and TD3, bfloat16 means the run's matrix products in bfloat16:
gradients that agree with float32, the start line, and the process setting put back.
"""

from __future__ import annotations

import csv
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from actorcritic.algorithms.update import accelerators_line, rollout_loss
from actorcritic.cli import main
from actorcritic.config import AlgoConfig, ModelConfig, load_config
from actorcritic.models import precision
from actorcritic.models.actor_critic import ActorCritic, place_encoders
from actorcritic.models.precision import encoder_precision, native_bfloat16
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.run.session import check_resume_compatible
from actorcritic.samplers.rollout import RolloutBuffer
from actorcritic.training import train

T, N = 5, 8
FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
ACTIONS = gym.spaces.Discrete(6)


def pong_like_rollout(seed: int) -> RolloutBuffer:
    """Smooth frames (a bright square on a dark field), so that the network's features vary
    with the input as real frames do, rather than averaging out noise."""
    rng = np.random.default_rng(seed)
    buf = RolloutBuffer(T, N, FRAMES, ACTIONS)
    b = buf.np
    b.obs[:] = rng.integers(0, 40, b.obs.shape)
    for t in range(T + 1):
        for n in range(N):
            y, x = rng.integers(0, 70, 2)
            b.obs[t, n, :, y:y + 14, x:x + 14] = 200
    b.actions[:] = rng.integers(0, 6, (T, N))
    b.rewards[:] = rng.choice([-1.0, 0.0, 1.0], (T, N), p=[0.1, 0.8, 0.1])
    b.terminated[:] = rng.random((T, N)) < 0.1
    b.valid[:] = True
    return buf


def gradients(precision: str, buf: RolloutBuffer) -> tuple[float, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = ActorCritic(FRAMES, ACTIONS, ModelConfig(encoder="nature_cnn",
                                                     precision=precision))
    loss, _ = rollout_loss(model, buf, AlgoConfig(vf_coef=0.25, ent_coef=0.01))
    loss.backward()
    return float(loss.detach()), {n: p.grad for n, p in model.named_parameters()}


def test_bfloat16_gradients_point_where_the_float32_ones_do():
    buf = pong_like_rollout(0)
    loss32, g32 = gradients("float32", buf)
    loss16, g16 = gradients("bfloat16", buf)
    assert loss16 == pytest.approx(loss32, rel=1e-2)
    for name in g32:
        assert g16[name].dtype == torch.float32, name
        a, b = g32[name].flatten(), g16[name].flatten()
        cosine = float(torch.dot(a, b) / (a.norm() * b.norm()))
        assert cosine > 0.99, (name, cosine)
        assert float(b.norm() / a.norm()) == pytest.approx(1.0, abs=0.05), name


def test_only_the_encoder_runs_in_bfloat16():
    torch.manual_seed(0)
    model = ActorCritic(FRAMES, ACTIONS, ModelConfig(encoder="nature_cnn",
                                                     precision="bfloat16"))
    seen: dict[str, torch.dtype] = {}
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.register_forward_hook(
                lambda m, args, out, name=name: seen.__setitem__(name, out.dtype))
    obs = torch.zeros(1, 3, *FRAMES.shape, dtype=torch.uint8)
    params, values, _ = model(obs, torch.zeros(1, 3, dtype=torch.bool), ())
    assert params.dtype == values.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    encoder = {k: v for k, v in seen.items() if ".encoder." in k}
    heads = {k: v for k, v in seen.items() if ".encoder." not in k}
    assert len(encoder) == 4 and set(encoder.values()) == {torch.bfloat16}
    assert heads and set(heads.values()) == {torch.float32}


def test_bfloat16_with_an_mlp_encoder_is_one_clear_error(tmp_path, capsys):
    rc = main(["train", "cartpole-a2c", "--run-dir", str(tmp_path / "run"),
               "--set", "model.precision=bfloat16"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1
    assert "model.precision=bfloat16 is for CNN encoders" in lines[0]


def test_precision_may_change_on_resume(tmp_path):
    saved = load_config("pong-a2c-tuned")
    check_resume_compatible(saved, load_config("pong-a2c-tuned", ["model.precision=bfloat16"]),
                            tmp_path)


def test_the_start_line_names_the_encoder_precision_apart_from_the_accelerators():
    assert accelerators_line("torch", "torch") == "accelerators: none (the plain torch path)"
    assert encoder_precision("bfloat16", cnn=True).line() == \
        "encoder in bfloat16 (model.precision=bfloat16)"
    assert encoder_precision("float32", cnn=True).line() is None  # the plain path


@pytest.mark.parametrize("flags,native", [
    ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "AMX"),
    ({"avx2", "avx512f", "avx512_bf16"}, "AVX512-BF16"),
    ({"avx2", "avx512f"}, None),   # an AVX-512 CPU without its bfloat16 extension
    (set(), None),                 # no /proc/cpuinfo (macOS, Windows)
])
def test_native_bfloat16_is_read_from_the_cpu_flags(flags, native):
    assert native_bfloat16(flags) == native


@pytest.mark.parametrize("setting,cnn,device,native,dtype,line", [
    ("auto", True, "cpu", "AMX", "bfloat16",
     "encoder in bfloat16 (model.precision=auto: this CPU has AMX)"),
    ("auto", True, "cpu", "AVX512-BF16", "bfloat16",
     "encoder in bfloat16 (model.precision=auto: this CPU has AVX512-BF16)"),
    ("auto", True, "cpu", None, "float32",
     "encoder in float32 (model.precision=auto: this CPU has no native bfloat16)"),
    ("auto", True, "cuda", "AMX", "float32", "encoder in float32 (model.precision=auto: on cuda)"),
    ("auto", False, "cpu", "AMX", "float32", None),        # an MLP: nothing to say
    ("float32", True, "cpu", "AMX", "float32", None),      # asked for: the plain path
    ("bfloat16", True, "cpu", None, "bfloat16",            # asked for, even if emulated
     "encoder in bfloat16 (model.precision=bfloat16)"),
])
def test_auto_picks_bfloat16_for_a_cnn_on_a_cpu_with_native_bfloat16(setting, cnn, device,
                                                                     native, dtype, line):
    choice = encoder_precision(setting, cnn, device, native)
    assert (choice.dtype, choice.line()) == (dtype, line)


def test_the_model_follows_its_device(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    model = ActorCritic(FRAMES, ACTIONS, ModelConfig(encoder="nature_cnn", precision="auto"))
    assert model.actor_trunk.bfloat16
    assert place_encoders(model, "cuda").dtype == "float32" and not model.actor_trunk.bfloat16
    assert place_encoders(model, "cpu").dtype == "bfloat16" and model.actor_trunk.bfloat16
    mlp = ActorCritic(gym.spaces.Box(-1, 1, (4,)), ACTIONS, ModelConfig(precision="auto"))
    assert not mlp.actor_trunk.bfloat16
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    assert place_encoders(model, "cpu").dtype == "float32" and not model.actor_trunk.bfloat16


@pytest.mark.slow
def test_short_pong_run_in_bfloat16(tmp_path, capsys):
    summary = train("pong-a2c-tuned", tmp_path / "run", quiet=False, overrides=[
        "model.precision=bfloat16", "env.num_envs=4", "run.total_steps=1000",
        "run.eval_episodes=1", "env.max_episode_steps=100", "run.log_every=5",
        "run.torch_threads=1"])
    assert summary["status"] == "finished" and summary["env_steps"] >= 1000
    out = capsys.readouterr()
    assert "encoder in bfloat16 (model.precision=bfloat16)" in out.out + out.err  # at start
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    losses = [float(r["losses/total"]) for r in rows if r.get("losses/total")]
    assert losses and all(math.isfinite(v) for v in losses)
    final = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")
    weights = final.section("model")
    assert weights and all(t.dtype == torch.float32 for t in weights.values())


@pytest.mark.slow
def test_a_default_pong_run_says_what_auto_chose_on_this_cpu(tmp_path, capsys):
    train("pong-a2c-tuned", tmp_path / "run", quiet=False, overrides=[
        "env.num_envs=2", "run.total_steps=200", "run.eval_episodes=0",
        "env.max_episode_steps=50", "run.torch_threads=1"])
    out = capsys.readouterr()
    expected = encoder_precision("auto", True, "cpu", native_bfloat16()).line()
    assert expected.startswith("encoder in ") and expected in out.out + out.err


# SAC and TD3: model.precision=bfloat16 computes the run's matrix products in bfloat16.

def test_bfloat16_matrix_products_put_the_setting_back_even_on_an_error():
    before = torch.backends.mkldnn.matmul.fp32_precision
    with pytest.raises(RuntimeError, match="inside"):
        with precision.bfloat16_matrix_products():
            assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
            raise RuntimeError("inside")
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    with precision.bfloat16_matrix_products(enabled=False):
        assert torch.backends.mkldnn.matmul.fp32_precision == before


def sac_critic_gradients(model, obs: torch.Tensor, actions: torch.Tensor, target: torch.Tensor
                         ) -> tuple[float, dict[str, torch.Tensor]]:
    from actorcritic.algorithms.twin_critics import twin_critic_loss

    model.zero_grad(set_to_none=True)
    loss = twin_critic_loss(model.critics(obs, actions), target)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.critics.named_parameters()}


def test_sac_critic_gradients_in_bfloat16_products_point_where_the_float32_ones_do():
    """The twin critics' loss and gradients on a HalfCheetah-sized batch (obs 17, action 6,
    256-256 units, batch 256) agree with float32 to bfloat16's rounding; on a CPU with
    native bfloat16 they also differ from float32, so the setting took effect."""
    from actorcritic.models.off_policy import build_off_policy_model

    cfg = load_config("pendulum-sac", ["model.precision=bfloat16"])
    obs_space = gym.spaces.Box(-np.inf, np.inf, (17,), np.float32)
    model = build_off_policy_model(cfg, obs_space, gym.spaces.Box(-1, 1, (6,), np.float32))
    gen = torch.Generator().manual_seed(0)
    obs, actions = torch.randn(256, 17, generator=gen), torch.rand(256, 6, generator=gen) * 2 - 1
    target = torch.randn(256, generator=gen) * 10
    loss32, g32 = sac_critic_gradients(model, obs, actions, target)
    with precision.bfloat16_matrix_products():
        loss16, g16 = sac_critic_gradients(model, obs, actions, target)
    assert loss16 == pytest.approx(loss32, rel=1e-2)
    for name in g32:
        a, b = g32[name].flatten(), g16[name].flatten()
        assert float(torch.dot(a, b) / (a.norm() * b.norm())) > 0.99, name
        assert float(b.norm() / a.norm()) == pytest.approx(1.0, abs=0.05), name
    if native_bfloat16():
        assert any(not torch.equal(g32[n], g16[n]) for n in g32)


def test_a_sac_run_in_bfloat16_products_says_so_and_leaves_the_setting_as_it_was(tmp_path,
                                                                                   capsys):
    before = torch.backends.mkldnn.matmul.fp32_precision
    summary = train("pendulum-sac", tmp_path / "run", quiet=False, overrides=[
        "model.precision=bfloat16", "run.total_steps=400", "algo.learning_starts=200",
        "run.eval_every=0", "run.eval_episodes=1"])
    assert summary["status"] == "finished" and summary["env_steps"] == 400
    out = capsys.readouterr()
    expected = precision.matrix_products_line("cpu", native_bfloat16())
    assert expected.startswith("matrix products in bfloat16") and expected in out.out + out.err
    assert "encoder in" not in out.out + out.err  # the actor's MLP adds no autocast
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    final = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")
    assert all(t.dtype == torch.float32 for t in final.section("model").values())


def test_the_products_line_says_what_happens_off_the_cpu_and_without_native_bfloat16():
    assert "on cuda the networks run in float32" in precision.matrix_products_line("cuda",
                                                                                  "AMX")
    assert "no native bfloat16" in precision.matrix_products_line("cpu", None)
