"""Config loading, overrides and validation: every user mistake is one clear error."""

import subprocess
import sys

import pytest
import yaml

from actorcritic.config import list_presets, load_config, parse_override
from actorcritic.errors import ConfigError

CLI = [sys.executable, "-m", "actorcritic.cli"]


def test_every_preset_loads_and_has_a_description():
    presets = list_presets()
    assert {"cartpole-a2c", "cartpole-masked-lstm-a2c"} <= set(presets)
    for name, description in presets.items():
        assert description, name
        cfg = load_config(name)
        assert cfg.preset == name


def test_overrides_are_typed():
    cfg = load_config("cartpole-a2c", ["algo.lr=3e-4", "env.num_envs=16", "run.seed=7",
                                       "model.hidden_sizes=[32, 32]", "algo.t_max=20",
                                       "run.stop_mean_return=195"])
    assert cfg.algo.lr == 3e-4 and isinstance(cfg.algo.lr, float)
    assert cfg.env.num_envs == 16 and cfg.run.seed == 7
    assert cfg.model.hidden_sizes == [32, 32]
    assert cfg.algo.num_steps == 20  # t_max is the A3C name of num_steps
    assert cfg.run.stop_mean_return == 195.0
    assert parse_override("algo.lr=1e-3") == ("algo.lr", 1e-3)


@pytest.mark.parametrize("override, message", [
    ("algo.lr=-1", "algo.lr must be > 0"),
    ("algo.gamma=1.5", "algo.gamma must be <= 1"),
    ("env.num_envs=0", "env.num_envs must be >= 1"),
    ("env.num_envs=two", "env.num_envs must be an integer"),
    ("algo.optimizer=sgd", "algo.optimizer must be one of rmsprop, rmsprop_tf, adam"),
    ("algo.lrr=1", "unknown config key 'algo.lrr'; did you mean algo.lr"),
    ("algo.nonsense=1", "Valid keys in 'algo': name, lr"),
    ("foo.bar=1", "unknown config section"),
    ("algo.lr", "must look like section.key=value"),
    ("run.eval_greedy=yes please", "must be true or false"),
])
def test_validation_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config("cartpole-a2c", [override])


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ConfigError, match="unknown preset 'cartpole-a2'.*cartpole-a2c"):
        load_config("cartpole-a2")


def test_preset_from_yaml_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("description: mine\nenv: {id: Acrobot-v1}\nalgo: {lr: 0.01}\n")
    cfg = load_config(str(path))
    assert cfg.env.id == "Acrobot-v1" and cfg.algo.lr == 0.01 and cfg.preset == "mine"
    path.write_text("env: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(path))


def run_cli(*args, cwd=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["train", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["train", "cartpole-a2c", "--set", "algo.lr=-3"], "algo.lr must be > 0"),
    (["train", "cartpole-a2c", "--set", "algo.gama=0.9"], "did you mean algo.gamma"),
    (["train", "cartpole-a2c", "--set", "env.id=NoSuchEnv-v9"], "unknown env id 'NoSuchEnv-v9'"),
    (["eval", "/nonexistent/run"], "does not exist"),
])
def test_cli_user_errors_are_one_line_exit_2(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("actorcritic: error: ") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_presets_lists_descriptions():
    result = run_cli("presets")
    assert result.returncode == 0
    assert any(line.startswith("cartpole-a2c ") and "CartPole" in line
               for line in result.stdout.splitlines())


def test_cli_set_takes_several_keys_and_repeats():
    result = run_cli("config", "cartpole-a2c", "--set", "algo.lr=3e-4", "env.num_envs=3",
                     "--set", "run.seed=9")
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert (cfg["algo"]["lr"], cfg["env"]["num_envs"], cfg["run"]["seed"]) == (3e-4, 3, 9)
