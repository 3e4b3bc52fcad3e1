"""ONNX export: the graph against the torch model on real observations in ONNX Runtime
(MLP on CartPole, Nature CNN on Pong frames, LSTM with state carried and reset), the CLI,
and the documentation's snippet (docs/export.md) that runs an exported agent with only
onnxruntime and numpy."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
import onnxruntime as ort  # noqa: E402

from actorcritic import load_config, train  # noqa: E402
from actorcritic.cli import main  # noqa: E402
from actorcritic.config import config_from_dict  # noqa: E402
from actorcritic.envs import make_vector_env, spaces_for  # noqa: E402
from actorcritic.export import (  # noqa: E402
    DEFAULT_OPSET,
    MAX_OPSET,
    MIN_OPSET,
    ExportError,
    OneStep,
    export_checkpoint,
    export_model,
    make_session,
    to_onnx,
)
from actorcritic.models.actor_critic import build_model  # noqa: E402
from actorcritic.run.checkpoint import (  # noqa: E402
    load_checkpoint,
    load_model_exact,
    resolve_checkpoint,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parent.parent
SHORT = ["run.eval_episodes=0", "run.log_every=5", "run.torch_threads=1", "run.device=cpu"]
TOL = 1e-5


def short_run(tmp_path_factory, preset: str, overrides: list[str]) -> Path:
    run_dir = tmp_path_factory.mktemp(preset) / "run"
    summary = train(load_config(preset, SHORT + overrides), run_dir, quiet=True)
    assert summary["status"] == "finished"
    return run_dir


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> Path:
    return short_run(tmp_path_factory, "cartpole-a2c",
                     ["env.num_envs=4", "run.total_steps=2000", "algo.lr_schedule=constant"])


@pytest.fixture(scope="module")
def pong_run(tmp_path_factory) -> Path:
    # float32 on every host (auto would act in bfloat16 on an AMX CPU): the graph's parity
    # with torch is what this agent is for; the bfloat16 agent has its own test below
    return short_run(tmp_path_factory, "pong-a2c-tuned",
                     ["env.backend=sync", "env.num_envs=2", "run.total_steps=100",
                      "model.precision=float32"])


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory) -> Path:
    return short_run(tmp_path_factory, "cartpole-masked-lstm-a2c",
                     ["env.num_envs=4", "run.total_steps=1000"])


@pytest.fixture(scope="module")
def cartpole_onnx(cartpole_run, tmp_path_factory) -> Path:
    """`actorcritic export RUN --onnx FILE` (the CLI's main; a fresh process is tested
    with the bad targets)."""
    out = tmp_path_factory.mktemp("onnx") / "cartpole.onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["export", str(cartpole_run), "--onnx", str(out)]) == 0
    printed = stdout.getvalue()
    assert f"wrote {out}" in printed and "opset 18" in printed
    assert "inputs:  obs float32 [N, 4]" in printed
    assert "outputs: logits float32 [N, 2], value float32 [N], action int64 [N]" in printed
    assert "checked against torch with ONNX Runtime on 16 real observations" in printed
    return out


def load_agent(run_dir: Path):
    """The model the way `actorcritic eval` rebuilds it, and its config."""
    ckpt = load_checkpoint(resolve_checkpoint(run_dir))
    cfg = config_from_dict(ckpt.meta["config"])
    model = build_model(cfg, *spaces_for(cfg))
    load_model_exact(model, ckpt)
    return model.eval(), cfg


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def play_side_by_side(model, cfg, sess, num_envs: int, steps: int, force_reset: dict):
    """Act on real observations with the torch model (model.act, greedy) and with ONNX
    Runtime, each carrying its own recurrent state; `force_reset` {step: env} flags an
    extra episode start. Returns the largest differences and how many episode starts the
    real envs produced."""
    envs = make_vector_env(cfg.env, num_envs=num_envs, seed=7, mode="eval")
    diff = {"logits": 0.0, "value": 0.0, "state": 0.0}
    starts = 0
    try:
        obs = envs.reset(seed=7)
        first = np.ones(num_envs, dtype=bool)
        reset_next = np.zeros(num_envs, dtype=bool)
        state = model.initial_state(num_envs)
        ort_state = [s.numpy() for s in state]
        names = [i.name for i in sess.get_inputs()]
        for t in range(steps):
            starts += int(first.sum()) if t > 0 else 0
            if t in force_reset:
                first[force_reset[t]] = True
            obs_t, first_t = torch.as_tensor(obs), torch.as_tensor(first)
            with torch.no_grad():
                params, _, _ = model(obs_t[None], first_t[None], state)
            action, _, value, state = model.act(obs_t, first_t, state, greedy=True)
            feed = dict(zip(names, [obs, first, *ort_state]))
            logits, ort_value, ort_action, *ort_state = sess.run(None, feed)
            diff["logits"] = max(diff["logits"], np.abs(logits - params[0].numpy()).max())
            diff["value"] = max(diff["value"], np.abs(ort_value - value.numpy()).max())
            for a, b in zip(ort_state, state):
                diff["state"] = max(diff["state"], np.abs(a - b.numpy()).max())
            assert ort_action.dtype == np.int64
            np.testing.assert_array_equal(ort_action, action.numpy())
            obs, _, term, trunc, _ = envs.step(action.numpy())
            first, reset_next = reset_next, ~reset_next & (term | trunc)
    finally:
        envs.close()
    return diff, starts


def test_mlp_cartpole_graph_matches_torch(cartpole_run, cartpole_onnx):
    model, cfg = load_agent(cartpole_run)
    sess = session(cartpole_onnx)
    assert [(i.name, i.type) for i in sess.get_inputs()] == [("obs", "tensor(float)")]
    assert [o.name for o in sess.get_outputs()] == ["logits", "value", "action"]
    for n in (1, 5):  # the batch axis is dynamic
        diff, _ = play_side_by_side(model, cfg, sess, n, steps=30, force_reset={})
        assert diff["logits"] <= TOL and diff["value"] <= TOL, diff


def test_nature_cnn_graph_on_real_pong_frames(pong_run, tmp_path):
    out = tmp_path / "pong.onnx"
    result = export_checkpoint(pong_run, out)
    assert result.inputs == ["obs uint8 [N, 4, 84, 84]"]
    assert result.outputs == ["logits float32 [N, 6]", "value float32 [N]", "action int64 [N]"]
    model, cfg = load_agent(pong_run)
    envs = make_vector_env(cfg.env, num_envs=3, seed=1, mode="eval")
    try:  # a real frame, not zeros: the graph gets the uint8 stack and divides by 255
        assert 20 < envs.reset(seed=1).mean() < 200
    finally:
        envs.close()
    diff, _ = play_side_by_side(model, cfg, session(out), 3, steps=6, force_reset={})
    assert diff["logits"] <= TOL and diff["value"] <= TOL, diff


def test_lstm_state_carried_over_steps_and_reset(lstm_run, tmp_path):
    out = tmp_path / "lstm.onnx"
    result = export_checkpoint(lstm_run, out)
    assert result.state == ["actor lstm h", "actor lstm c", "critic lstm h", "critic lstm c"]
    sess = session(out)
    assert [i.name for i in sess.get_inputs()] == ["obs", "first"] + [
        f"state_in_{i}" for i in range(4)]
    assert sess.get_inputs()[1].type == "tensor(bool)"
    assert [o.name for o in sess.get_outputs()][3:] == [f"state_out_{i}" for i in range(4)]
    model, cfg = load_agent(lstm_run)
    # 60 steps of 3 envs: real episode ends of an early agent, plus one forced start
    diff, starts = play_side_by_side(model, cfg, sess, 3, steps=60, force_reset={25: 1})
    assert starts >= 1, starts  # the envs' own episode ends, not only the forced one
    assert max(diff.values()) <= TOL, diff
    # first=True ignores the state passed in: the same outputs as a zero state
    obs = np.full((2, 2), 0.03, np.float32)
    junk = {f"state_in_{i}": np.full((2, 64), 0.7, np.float32) for i in range(4)}
    zeros = {k: np.zeros_like(v) for k, v in junk.items()}
    a = sess.run(None, {"obs": obs, "first": np.array([True, True]), **junk})
    b = sess.run(None, {"obs": obs, "first": np.array([False, False]), **zeros})
    c = sess.run(None, {"obs": obs, "first": np.array([False, False]), **junk})
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert np.abs(a[1] - c[1]).max() > 1e-4  # the state does matter otherwise


def test_box_actions_with_gru_and_separate_trunks(tmp_path):
    """Pendulum (Box): mean, log_std and the action clipped as eval clips it; a GRU core."""
    cfg = load_config("cartpole-a2c", ["env.id=Pendulum-v1", "env.backend=sync",
                                       "model.core=gru", "model.core_size=16"])
    obs_space, action_space = spaces_for(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, obs_space, action_space).eval()
    with torch.no_grad():
        model.policy.mean.bias.fill_(3.0)  # means outside [-2, 2]: the clipping shows
    result = export_model(model, cfg, obs_space, action_space, tmp_path / "p.onnx")
    assert result.outputs[:4] == ["mean float32 [N, 1]", "log_std float32 [N, 1]",
                                  "value float32 [N]", "action float32 [N, 1]"]
    assert result.state == ["actor gru h", "critic gru h"]
    sess = session(tmp_path / "p.onnx")
    envs = make_vector_env(cfg.env, num_envs=4, seed=3, mode="eval")
    obs = envs.reset(seed=3)
    envs.close()
    first = np.ones(4, dtype=bool)
    state = model.initial_state(4)
    mean, log_std, value, action, *_ = sess.run(None, {
        "obs": obs, "first": first, **{f"state_in_{i}": s.numpy() for i, s in enumerate(state)}})
    t_action, _, t_value, _ = model.act(torch.as_tensor(obs), torch.as_tensor(first), state,
                                        greedy=True)
    assert np.abs(mean - t_action.numpy()).max() <= TOL
    assert np.abs(value - t_value.numpy()).max() <= TOL
    np.testing.assert_array_equal(log_std, np.broadcast_to(model.policy.log_std.detach(), (4, 1)))
    assert (mean > 2).all()
    np.testing.assert_array_equal(action, np.full((4, 1), 2.0, np.float32))


def test_multidiscrete_graph_at_the_highest_opset():
    """MultiDiscrete: the logits concatenated, one argmax per sub-action [N, K]."""
    cfg = load_config("cartpole-a2c", [])
    obs_space = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 4])
    torch.manual_seed(0)
    model = build_model(cfg, obs_space, action_space).eval()
    with torch.no_grad():
        model.policy.linear.weight.mul_(100.0)
    step = OneStep(model, action_space).eval()
    sess = make_session(to_onnx(step, obs_space, MAX_OPSET, {}), MAX_OPSET)
    obs = np.random.default_rng(0).uniform(-1, 1, (7, 6)).astype(np.float32)
    logits, value, action = sess.run(None, {"obs": obs})
    t_action, _, t_value, _ = model.act(torch.as_tensor(obs), torch.zeros(7, dtype=torch.bool),
                                        (), greedy=True)
    assert logits.shape == (7, 7) and action.shape == (7, 2)
    np.testing.assert_array_equal(action, t_action.numpy())
    assert np.abs(value - t_value.numpy()).max() <= TOL


def test_bfloat16_agent_is_exported_in_float32(tmp_path):
    cfg = load_config("pong-a2c-tuned", ["env.backend=sync", "model.precision=bfloat16"])
    obs_space, action_space = spaces_for(cfg)
    model = build_model(cfg, obs_space, action_space).eval()
    result = export_model(model, cfg, obs_space, action_space, tmp_path / "bf16.onnx")
    assert any("bfloat16" in note and "float32" in note for note in result.notes)
    assert model.actor_trunk.bfloat16  # the caller's model is left as it was
    assert max(result.max_abs_diff.values()) <= TOL


def test_cli_bad_targets_give_one_line_and_exit_2(tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-m", "actorcritic.cli", "export",
                           str(tmp_path / "missing"), "--onnx", str(tmp_path / "a.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("actorcritic: error: ") and proc.stderr.count("\n") == 1
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint" * 10)
    (tmp_path / "empty_run").mkdir()
    cases = [[str(garbage)], [str(tmp_path / "empty_run")],
             [str(garbage), "--opset", "12"]]
    for args in cases:
        assert main(["export", *args, "--onnx", str(tmp_path / "a.onnx")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("actorcritic: error: ") and err.count("\n") == 1, err
    assert main(["export", str(garbage), "--onnx", str(tmp_path / "no" / "a.onnx")]) == 2
    assert "directory" in capsys.readouterr().err
    assert not (tmp_path / "a.onnx").exists()


def test_cli_model_that_cannot_be_exported_faithfully_writes_nothing(cartpole_run, tmp_path,
                                                                     capsys):
    """A checkpoint whose value is NaN cannot be checked: exit 2, one line, and the file
    already at --onnx is left as it was (no partial or temporary file either)."""
    ckpt = load_checkpoint(resolve_checkpoint(cartpole_run))
    tensors = dict(ckpt.tensors)
    tensors["model.value.bias"] = torch.full_like(tensors["model.value.bias"], float("nan"))
    bad = tmp_path / "nan.safetensors"
    save_checkpoint(bad, tensors, ckpt.meta)
    out = tmp_path / "out" / "agent.onnx"
    out.parent.mkdir()
    out.write_bytes(b"previous export")
    assert main(["export", str(bad), "--onnx", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "value is not finite" in err and "nothing was written" in err
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in out.parent.iterdir()] == ["agent.onnx"]


def test_an_exporter_failure_is_one_line(monkeypatch):
    def fail(*args, **kwargs):
        try:
            raise NotImplementedError("aten::weird_op has no ONNX translation\nmore detail")
        except NotImplementedError as exc:
            raise RuntimeError("Failed to export the model\nlong story") from exc

    monkeypatch.setattr(torch.onnx, "export", fail)
    cfg = load_config("cartpole-a2c", [])
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    model = build_model(cfg, space, gym.spaces.Discrete(2))
    with pytest.raises(ExportError) as info:
        to_onnx(OneStep(model, gym.spaces.Discrete(2)), space, DEFAULT_OPSET, {})
    assert str(info.value) == ("this model cannot be exported to ONNX (NotImplementedError: "
                               "aten::weird_op has no ONNX translation)")


def test_missing_onnxruntime_says_how_to_install(cartpole_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    assert main(["export", str(cartpole_run), "--onnx", str(tmp_path / "a.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "onnxruntime" in err and "pip install -e '.[export]'" in err
    assert not (tmp_path / "a.onnx").exists()


def test_cli_help_names_every_option_and_the_opsets(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})" in text
    for option in ("target run dir", "--onnx FILE the ONNX file", "--opset OPSET ONNX opset"):
        assert option in text, option


def docs_snippet() -> str:
    text = (ROOT / "docs" / "export.md").read_text()
    block = re.search(r"<!-- ONNX-EXAMPLE:BEGIN -->\n```python\n(.*?)```\n<!-- ONNX-EXAMPLE:END",
                      text, re.S)
    assert block, "docs/export.md lost its ONNX-EXAMPLE markers"
    return block.group(1)


def test_docs_snippet_runs_with_onnxruntime_only(cartpole_onnx, cartpole_run):
    code = docs_snippet()
    assert "actorcritic" not in code and '"cartpole.onnx"' in code
    proc = subprocess.run([sys.executable, "-c", code], cwd=cartpole_onnx.parent,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The same episode (CartPole-v1, seed 0) played by the torch model the file came from.
    model, _ = load_agent(cartpole_run)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    total, done, state = 0.0, False, model.initial_state(1)
    while not done:
        with torch.no_grad():
            action, _, _, state = model.act(torch.as_tensor(obs[None]), torch.zeros(1, dtype=bool),
                                            state, greedy=True)
        obs, reward, terminated, truncated, _ = env.step(int(action[0]))
        total, done = total + reward, terminated or truncated
    env.close()
    assert float(proc.stdout.split()[-1]) == total  # the episode's return


def test_docs_document_the_graph_names(cartpole_onnx):
    section = (ROOT / "docs" / "export.md").read_text()
    names = {n for n in re.findall(r"`(\w+)`", section)}
    for arg in session(cartpole_onnx).get_inputs() + session(cartpole_onnx).get_outputs():
        assert arg.name in names, arg.name
    for name in ("first", "state_in_0", "state_out_0", "mean", "log_std"):
        assert name in names, name


def test_observation_statistics_are_inside_the_graph(tmp_path):
    """A model with model.normalize_obs: the graph takes raw observations and applies the
    trained statistics (here far from the identity, so a graph without them would differ)."""
    cfg = load_config("cartpole-ppo", ["model.normalize_obs=true", "env.backend=sync"])
    obs_space, action_space = spaces_for(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, obs_space, action_space).eval()
    model.obs_norm.update(torch.randn(500, 4, dtype=torch.float64) * 3.0 + 5.0)
    export_model(model, cfg, obs_space, action_space, tmp_path / "n.onnx")
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    logits, value, _ = session(tmp_path / "n.onnx").run(None, {"obs": obs})
    with torch.no_grad():
        params, t_value, _ = model(torch.as_tensor(obs)[None], torch.zeros(1, 6, dtype=bool), ())
        model.obs_norm = None
        raw, _, _ = model(torch.as_tensor(obs)[None], torch.zeros(1, 6, dtype=bool), ())
    assert np.abs(logits - params[0].numpy()).max() <= TOL
    assert np.abs(value - t_value[0].numpy()).max() <= TOL
    assert np.abs(raw[0].numpy() - params[0].numpy()).max() > 1e-3
