"""Exact snapshots of pure-Python environments, for exact resume without pickle.

A Gymnasium classic-control env (and every wrapper around it) keeps its whole state in
plain attributes: NumPy arrays, numbers, deques of numbers and a NumPy Generator. We walk
the wrapper chain of each sub-env of a SyncVectorEnv and of the vector env itself and
record exactly those attributes: arrays go to safetensors, the rest to JSON. A natively
vectorized env (Gymnasium's CartPoleVectorEnv) is one such object for all its envs. Envs whose
state lives in C objects (Box2D, ALE, EnvPool, subprocesses) cannot be captured this way;
`can_snapshot` says which, and a resumed run resets those envs instead.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

SNAPSHOT_MODULES = ("gymnasium.envs.classic_control",)


def can_snapshot(vec_env: Any) -> bool:
    inner = getattr(vec_env, "env", None)
    envs = getattr(inner, "envs", None)
    if envs is None:  # a natively vectorized env (CartPoleVectorEnv): one object for all
        return type(getattr(inner, "unwrapped", None)).__module__.startswith(SNAPSHOT_MODULES)
    return all(type(e.unwrapped).__module__.startswith(SNAPSHOT_MODULES) for e in envs)


def _layers(env: Any) -> list[Any]:
    out = [env]
    while hasattr(out[-1], "env"):
        out.append(out[-1].env)
    return out


def _objects(vec_env: Any) -> dict[str, Any]:
    inner = vec_env.env
    if not hasattr(inner, "envs"):
        return {f"vec.{k}": layer for k, layer in enumerate(_layers(inner))}
    objs = {"vec": inner}
    for i, env in enumerate(inner.envs):
        for k, layer in enumerate(_layers(env)):
            objs[f"env{i}.{k}"] = layer
    return objs


def capture(vec_env: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Return (arrays, json_values) describing the full state of a snapshot-able vector env."""
    arrays: dict[str, np.ndarray] = {}
    values: dict[str, Any] = {}
    for prefix, obj in _objects(vec_env).items():
        for name, value in vars(obj).items():
            key = f"{prefix}.{name}"
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                arrays[key] = np.ascontiguousarray(value)
            elif isinstance(value, np.random.Generator):
                values[key] = {"generator": value.bit_generator.state}
            elif isinstance(value, (bool, int, float, str)) or value is None:
                values[key] = {"value": value}
            elif isinstance(value, np.generic):
                values[key] = {"value": value.item()}
            elif isinstance(value, collections.deque) and all(
                    isinstance(v, (int, float, np.generic)) for v in value):
                values[key] = {"deque": [float(v) for v in value], "maxlen": value.maxlen}
    return arrays, values


def restore(vec_env: Any, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
    objs = _objects(vec_env)
    for key, array in arrays.items():
        prefix, name = key.rsplit(".", 1)
        current = getattr(objs[prefix], name, None)
        if isinstance(current, np.ndarray) and current.shape == array.shape:
            current[...] = array  # keep views that other objects share
        else:
            setattr(objs[prefix], name, array.copy())
    for key, entry in values.items():
        prefix, name = key.rsplit(".", 1)
        obj = objs[prefix]
        if "generator" in entry:
            current = getattr(obj, name, None)
            if not isinstance(current, np.random.Generator):
                current = np.random.Generator(np.random.PCG64())
                setattr(obj, name, current)
            current.bit_generator.state = entry["generator"]
        elif "deque" in entry:
            setattr(obj, name, collections.deque(entry["deque"], maxlen=entry["maxlen"]))
        else:
            setattr(obj, name, entry["value"])


def add_to_checkpoint(vec_env: Any, tensors: dict, meta: dict) -> None:
    """A snapshot-able env's state into a checkpoint being written: its arrays as `env.*`
    tensors, the rest in the JSON header (`env_snapshot`). Other envs add nothing."""
    import torch

    draw = getattr(vec_env, "scenario_draw", None)  # football: scenario draw, curriculum
    if draw is not None:
        meta["scenario_draw"] = draw.state()
    if can_snapshot(vec_env):
        arrays, values = capture(vec_env)
        tensors.update({f"env.{k}": torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        meta["env_snapshot"] = values


def restore_from_checkpoint(vec_env: Any, ckpt: Any) -> bool:
    """Put the env back in the state `add_to_checkpoint` recorded; False when the checkpoint
    holds none or this env cannot be snapshotted (a football env gets back its scenario
    draw even so: the episodes it starts next follow the run's draw and curriculum)."""
    draw = getattr(vec_env, "scenario_draw", None)
    if draw is not None and "scenario_draw" in ckpt.meta:
        draw.load_state(ckpt.meta["scenario_draw"])
    values = ckpt.meta.get("env_snapshot")
    if values is None or not can_snapshot(vec_env):
        return False
    restore(vec_env, {k: v.numpy() for k, v in ckpt.section("env").items()}, values)
    return True
