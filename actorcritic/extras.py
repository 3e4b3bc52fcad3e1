"""Optional dependencies: the extras of pyproject.toml and the one line that names a missing one.

The core install runs the classic-control envs (CartPole, Acrobot, Pendulum, ...) on the
Gymnasium backends. Everything else is an extra, imported only by the code that needs it:

    envpool   EnvPool (env.backend=envpool on a non-Atari env, e.g. acrobot-a2c)
    atari     EnvPool, ale-py, OpenCV (every Atari backend)
    box2d     Box2D (LunarLander, BipedalWalker, CarRacing) and EnvPool (the presets' backend)
    mujoco    MuJoCo (HalfCheetah, Hopper, ...)
    football  EnvPool's engine and the official engine's Python packages
    ray       run.backend=ray
    export    actorcritic export --onnx
    tune      actorcritic tune
"""

from __future__ import annotations

import importlib
from types import ModuleType

import gymnasium as gym

from actorcritic.errors import EnvError, UserError

NAMES = {"envpool": "EnvPool", "atari": "Atari", "box2d": "Box2D", "mujoco": "MuJoCo",
         "football": "Football", "ray": "Ray", "export": "export", "tune": "tune"}


def install_line(extra: str) -> str:
    return f"pip install 'actorcritic[{extra}]'"


def missing(what: str, extra: str, error: type[UserError] = EnvError,
            alternative: str = "") -> UserError:
    """The error for `what` (e.g. "env 'Pong-v5'") when the extra `extra` is not installed."""
    tail = f" (or {alternative})" if alternative else ""
    return error(f"{what} needs the {NAMES[extra]} extra: {install_line(extra)}{tail}")


def require(module: str, extra: str, what: str, error: type[UserError] = EnvError,
            alternative: str = "") -> ModuleType:
    """Import `module`, or raise `error` with one line naming `extra` and its pip command.

    A module that is installed but fails to import (a broken binary) says so, with the
    same command to reinstall it.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise missing(what, extra, error, alternative) from None
        broken = exc
    except ImportError as exc:
        broken = exc
    detail = (str(broken).splitlines() or [type(broken).__name__])[0]
    raise error(f"{what}: {module} is installed but cannot be imported ({detail}); "
                f"reinstall the {NAMES[extra]} extra: {install_line(extra)}") from None


def env_family(env_id: str) -> str | None:
    """The extra a Gymnasium id's own package needs ("box2d", "mujoco"), or None."""
    try:
        entry = gym.spec(env_id.split(":")[-1]).entry_point
    except gym.error.Error:
        return None
    if not isinstance(entry, str):
        return None
    for family in ("box2d", "mujoco"):
        if entry.startswith(f"gymnasium.envs.{family}"):
            return family
    return None


def dependency_error(env_id: str, exc: Exception) -> EnvError:
    """Gymnasium's DependencyNotInstalled (e.g. LunarLander without Box2D) as one line."""
    family = env_family(env_id)
    if family is not None:
        return missing(f"env '{env_id}'", family)
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    return EnvError(f"env '{env_id}' needs a package that is not installed: {detail}")
