"""The light core install: what it lists, that a CartPole run needs nothing more, and the one
line (with its `pip install`) that each env family or feature gives when its extra is missing.

A missing package is simulated with `sys.modules[name] = None`, which makes `import name`
raise ImportError exactly as an uninstalled package does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from actorcritic.config import EnvConfig
from actorcritic.envs import make_vector_env
from actorcritic.errors import ConfigError, EnvError

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"envpool", "ale-py", "opencv-python", "opencv-python-headless", "box2d", "box2d-py",
         "mujoco", "ray", "onnx", "onnxscript", "onnxruntime", "optuna", "gym", "gfootball",
         "scipy"}
# What a CartPole run must not import: every optional package the code knows.
OPTIONAL_MODULES = ["envpool", "ale_py", "cv2", "Box2D", "mujoco", "ray", "onnx",
                    "onnxruntime", "onnxscript", "optuna", "gfootball", "gym"]


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def line(what: str, extra: str, name: str) -> str:
    return f"{what} needs the {name} extra: pip install 'actorcritic[{extra}]'"


def block(monkeypatch, *modules: str) -> None:
    """Make `import module` fail for each module, as if it were not installed, and forget
    the Gymnasium env modules that imported them (so gym.make imports them again)."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    for family in ("box2d", "mujoco"):
        for name in [m for m in sys.modules if m.startswith(f"gymnasium.envs.{family}")]:
            monkeypatch.delitem(sys.modules, name)


def env_error(cfg: EnvConfig, mode: str = "train") -> str:
    with pytest.raises(EnvError) as info:
        make_vector_env(cfg, num_envs=1, mode=mode).close()
    assert "\n" not in str(info.value)
    return str(info.value)


# ---------------------------------------------------------------- pyproject.toml

def test_core_dependencies_leave_out_every_heavy_package():
    core = names(pyproject()["dependencies"])
    assert {"torch", "numpy", "gymnasium"} <= core
    assert not core & HEAVY, core & HEAVY


def test_each_extra_holds_its_packages_and_test_holds_them_all():
    from actorcritic.extras import NAMES

    optional = pyproject()["optional-dependencies"]
    extras = {k: names(v) for k, v in optional.items()}
    assert extras["atari"] >= {"envpool", "ale-py", "opencv-python-headless"}
    assert extras["box2d"] >= {"box2d"}
    assert extras["mujoco"] == {"mujoco"}
    assert extras["football"] >= {"envpool", "gym"}
    assert extras["ray"] == {"ray"}
    assert extras["export"] == {"onnx", "onnxscript", "onnxruntime"}
    assert extras["tune"] == {"optuna"}
    assert set(NAMES) <= set(extras)  # every extra an error names exists
    (everything,) = optional["all"]
    assert set(everything[len("actorcritic["):-1].split(",")) == set(NAMES)
    assert "actorcritic[all,docs]" in optional["test"]  # make test builds the site too
    assert extras["docs"] >= {"mkdocs", "mkdocs-material", "mkdocstrings"}


# ---------------------------------------------------------------- env families

@pytest.mark.parametrize("backend, module", [("envpool", "envpool"), ("ale_vector", "ale_py"),
                                             ("sync", "ale_py"), ("sync", "cv2"),
                                             ("async", "cv2")])
def test_atari_without_its_extra(monkeypatch, backend, module):
    block(monkeypatch, module)
    cfg = EnvConfig(id="PongNoFrameskip-v4", backend=backend)
    assert env_error(cfg) == line("env 'PongNoFrameskip-v4'", "atari", "Atari")


def test_atari_ids_are_recognized_without_ale_py(monkeypatch):
    from actorcritic.envs import atari

    block(monkeypatch, "ale_py")
    atari._rom_names.cache_clear()
    try:
        assert atari.atari_game("ALE/SpaceInvaders-v5") == "space_invaders"
        assert atari.is_atari_id("Breakout-v5") and not atari.is_atari_id("CartPol-v0")
        assert env_error(EnvConfig(id="ALE/Pong-v5", backend="sync"), mode="eval") == \
            line("env 'ALE/Pong-v5'", "atari", "Atari")
    finally:
        monkeypatch.undo()
        atari._rom_names.cache_clear()


def test_the_built_in_game_list_is_ale_pys():
    roms = pytest.importorskip("ale_py.roms")
    from actorcritic.envs.atari import ALE_GAMES

    assert set(roms.get_all_rom_ids()) <= set(ALE_GAMES)


def test_agent_env_of_an_atari_run_without_its_extra(monkeypatch):
    from actorcritic.envs.atari import make_atari_env

    block(monkeypatch, "cv2")
    with pytest.raises(EnvError, match=re.escape(line("env 'ALE/Pong-v5'", "atari", "Atari"))):
        make_atari_env(EnvConfig(id="ALE/Pong-v5"), "pong")


def test_envpool_backend_on_classic_control_without_envpool(monkeypatch):
    block(monkeypatch, "envpool")
    assert env_error(EnvConfig(id="Acrobot-v1", backend="envpool")) == \
        line("env 'Acrobot-v1' on env.backend=envpool", "envpool", "EnvPool") + \
        " (or set env.backend=sync)"


@pytest.mark.parametrize("backend", ["sync", "async", "envpool"])
def test_box2d_without_its_extra(monkeypatch, backend):
    block(monkeypatch, "Box2D", "envpool")
    what = "env 'LunarLander-v3'" + (" on env.backend=envpool" if backend == "envpool" else "")
    assert env_error(EnvConfig(id="LunarLander-v3", backend=backend)).startswith(
        line(what, "box2d", "Box2D"))


def test_mujoco_without_its_extra(monkeypatch):
    block(monkeypatch, "mujoco")
    assert env_error(EnvConfig(id="HalfCheetah-v5", backend="sync")) == \
        line("env 'HalfCheetah-v5'", "mujoco", "MuJoCo")


def test_football_without_its_extra(monkeypatch):
    block(monkeypatch, "envpool")
    cfg = EnvConfig(id="gfootball/academy_empty_goal_close-v1", backend="envpool",
                    representation="extracted")
    assert env_error(cfg) == line("env 'gfootball/academy_empty_goal_close-v1' on "
                                  "env.backend=envpool", "football", "Football")


def test_a_missing_renderer_is_one_line(monkeypatch):
    import gymnasium as gym

    from actorcritic.run.evaluate import _first_frame

    class NoRenderer:
        def render_first(self):
            raise gym.error.DependencyNotInstalled('pygame is not installed, run `pip install '
                                                   '"gymnasium[classic-control]"`')

    with pytest.raises(EnvError, match=r"^env 'CartPole-v1' needs a package that is not "
                                       r"installed: pygame is not installed"):
        _first_frame(NoRenderer(), "CartPole-v1")


def test_an_installed_module_that_fails_to_import_says_so(monkeypatch):
    from actorcritic.extras import require

    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name == "envpool":
                raise ImportError("libfoo.so: cannot open shared object file")

    monkeypatch.delitem(sys.modules, "envpool", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(EnvError) as info:
        require("envpool", "atari", "env 'Pong-v5'")
    assert str(info.value) == ("env 'Pong-v5': envpool is installed but cannot be imported "
                               "(libfoo.so: cannot open shared object file); reinstall the "
                               "Atari extra: pip install 'actorcritic[atari]'")


# ---------------------------------------------------------------- features

def test_ray_without_its_extra(monkeypatch):
    from actorcritic.distributed.ray_backend import import_ray

    block(monkeypatch, "ray")
    with pytest.raises(ConfigError) as info:
        import_ray()
    assert str(info.value) == line("run.backend=ray", "ray", "Ray")


def test_tune_without_its_extra(monkeypatch, tmp_path, capsys):
    from actorcritic.cli import main

    block(monkeypatch, "optuna")
    assert main(["tune", "cartpole-a2c", "--trials", "1", "--tune-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == \
        f"actorcritic: error: {line('actorcritic tune', 'tune', 'tune')}\n"


def test_export_without_its_extra(monkeypatch):
    from actorcritic.export import ExportError, require_onnx

    block(monkeypatch, "onnx")
    with pytest.raises(ExportError, match=r"onnx is not installed.*\[export\]"):
        require_onnx()


# ---------------------------------------------------------------- the command line

def run_cli(args: list[str], blocked: list[str], timeout: int = 240):
    """`actorcritic ARGS` in a fresh process in which the `blocked` modules are missing."""
    code = ("import sys\n"
            f"for m in {blocked!r}: sys.modules[m] = None\n"
            "from actorcritic.cli import main\n"
            f"sys.exit(main({args!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_cli_names_the_missing_extra_in_one_line(tmp_path):
    out = run_cli(["train", "pong-a2c", "--set", "run.total_steps=100", "--quiet",
                   "--run-dir", str(tmp_path / "run")], OPTIONAL_MODULES)
    assert out.returncode == 2, out.stderr
    assert out.stderr == ("actorcritic: error: " + line("env 'PongNoFrameskip-v4'", "atari",
                                                        "Atari") + "\n")


def test_a_cartpole_run_needs_no_extra(tmp_path):
    out = run_cli(["train", "cartpole-a2c", "--set", "run.total_steps=2000",
                   "run.eval_episodes=0", "--quiet", "--run-dir", str(tmp_path / "run")],
                  OPTIONAL_MODULES)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run" / "summary.json").exists()
