"""Processes that do not learn do not import torch: env workers and Ray env actors step
envs, and the command line answers --help, `presets` and a bad preset, without it (about
2 s of CPU and 200 MB per process). Each case runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

STEP_ENVS = """
import sys
import numpy as np
from actorcritic.config import load_config
from actorcritic.envs import make_vector_env
envs = make_vector_env(load_config("cartpole-a2c").env, num_envs=2, seed=0)
envs.reset(seed=0)
envs.step(np.zeros(2, dtype=np.int64))
envs.close()
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""

CLI = """
import sys
from actorcritic.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=120)


def modules_after(script: str, *args: str) -> str:
    return run(script, *args).stdout.strip().splitlines()[-1]


def test_stepping_envs_imports_no_torch():
    assert modules_after(STEP_ENVS) == "[]"


@pytest.mark.parametrize("args, answer", [
    (["--help"], "usage: actorcritic"), (["presets"], "cartpole-a2c"),
    (["train", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["config", "cartpole-a2c"], "CartPole-v1")])
def test_the_command_line_answers_without_torch(args, answer):
    out = run(CLI, *args)
    assert answer in out.stdout + out.stderr, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_public_names_load_on_first_use():
    script = ("import sys, actorcritic; before = 'actorcritic.training' in sys.modules; "
              "f = actorcritic.train; print(before, f.__module__, 'load' in dir(actorcritic))")
    assert modules_after(script) == "False actorcritic.training True"


def test_train_is_the_function_whatever_was_imported_first():
    """No submodule is named like a public name: importing a submodule binds it on the
    package, and would hide a public name that has not been looked up yet."""
    script = ("import actorcritic.training, actorcritic.agent, actorcritic.config, actorcritic; "
              "print(all(callable(getattr(actorcritic, n)) for n in actorcritic.__all__))")
    assert modules_after(script) == "True"
