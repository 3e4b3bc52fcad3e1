"""The user's own env factory and encoder class, passed from Python (docs/CUSTOM.md):
`train(cfg, env_fn=make_env, encoder=MyEncoder)`, `load(run_dir, env_fn=make_env)`.

A run records each by import path, `module:qualname`: env.id names the factory and
model.encoder the class, in config.yaml and in every checkpoint's JSON. An object with no
importable name (a lambda, a local function or class, anything in `__main__`) still
trains: it is remembered in this process (importpath.py), which limits the run to the
placements that run in this process, and a later process needs it passed again.

Loading a checkpoint runs no code it names beyond importing the modules and building the
encoder class (an nn.Module class) and env class (a gymnasium.Env class) it names. It
calls no function a checkpoint names: an env made by a function factory is loaded with
that factory passed again.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from actorcritic import registry
from actorcritic.config import Config, check_consistency, config_from_dict
from actorcritic.envs.factory import env_factory, is_env_class
from actorcritic.errors import CheckpointError, ConfigError, EnvError
from actorcritic.importpath import (
    importable,
    is_import_path,
    remember,
    remember_as,
    remembered,
    resolve,
)


def adopt(cfg: Config, env_fn: Callable | None, encoder: type | None) -> list[str]:
    """Point a new run's `cfg` (changed in place) at the user's env factory and encoder,
    given here or named in the config; return the lines to say about them at start."""
    if env_fn is not None:
        _check_env_fn(env_fn)
        cfg.env.id = remember(env_fn)
    if encoder is not None:
        _check_encoder(encoder)
        cfg.model.encoder = remember(encoder)
    check_consistency(cfg)
    notes, unnamed = [], []
    factory = env_factory(cfg.env.id)
    if factory is not None:
        if cfg.env.backend not in ("sync", "async"):  # a preset's backend for its own id
            notes.append(f"env.backend={cfg.env.backend} is for Gymnasium and EnvPool ids: "
                         f"the env factory runs on env.backend=sync")
            cfg.env.backend = "sync"
        if not importable(factory):
            unnamed.append(f"env_fn '{cfg.env.id}'")
        if not is_env_class(factory):
            notes.append(_reload_note(cfg.env.id, importable(factory)))
    own = remembered(cfg.model.encoder) if is_import_path(cfg.model.encoder) else None
    if own is not None and not importable(own):
        unnamed.append(f"encoder '{cfg.model.encoder}'")
        notes.append(f"encoder '{cfg.model.encoder}' has no importable name: the agent can "
                     f"be loaded only with the same class passed again, "
                     f"actorcritic.load(run_dir, encoder=...)")
    _check_placement(cfg, unnamed)
    return notes


def readopt(cfg: Config, env_fn: Callable | None, encoder: type | None, source: str,
            training: bool = True) -> None:
    """The same objects passed again for a run that recorded them (resume, load): each is
    remembered under the path `source` (a run dir or checkpoint) recorded. `training`: the
    run goes on (its placement must run them), else an agent plays them here."""
    unnamed = []
    if env_fn is not None:
        _check_env_fn(env_fn)
        if ":" not in cfg.env.id:
            raise ConfigError(f"{source} was trained on env '{cfg.env.id}', not on an env "
                              f"factory: leave env_fn out")
        remember_as(cfg.env.id, env_fn)
        unnamed += [] if importable(env_fn) else [f"env_fn '{cfg.env.id}'"]
    if encoder is not None:
        _check_encoder(encoder)
        if not is_import_path(cfg.model.encoder):
            raise ConfigError(f"{source} uses the built-in encoder '{cfg.model.encoder}': "
                              f"leave encoder out")
        remember_as(cfg.model.encoder, encoder)
        unnamed += [] if importable(encoder) else [f"encoder '{cfg.model.encoder}'"]
    if training:
        _check_placement(cfg, unnamed)


def checkpoint_config(ckpt, env_fn: Callable | None = None,
                      encoder: type | None = None) -> Config:
    """The config a checkpoint was trained with, its own code checked before anything is
    built: the encoder it names must import as an nn.Module class, and an env factory it
    names must be a gymnasium.Env class or passed again as `env_fn`."""
    if "config" not in ckpt.meta:
        raise CheckpointError(f"checkpoint {ckpt.path} holds no config, so its model cannot "
                              f"be rebuilt")
    cfg = config_from_dict(ckpt.meta["config"])
    readopt(cfg, env_fn, encoder, f"checkpoint {ckpt.path}", training=False)
    if encoder is None and is_import_path(cfg.model.encoder):
        _check_named_encoder(cfg.model.encoder, ckpt.path)
    if env_fn is None and ":" in cfg.env.id:
        _check_named_env(cfg.env.id, ckpt.path)
    return cfg


def _check_named_encoder(path: str, ckpt_path) -> None:
    try:
        cls = resolve(path)
    except ImportError as exc:
        raise CheckpointError(f"checkpoint {ckpt_path} names the encoder '{path}', which "
                              f"cannot be imported: {exc}; pass the class: "
                              f"actorcritic.load(..., encoder=...)") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckpointError(f"checkpoint {ckpt_path} names '{path}' as its encoder, which "
                              f"is a {type(cls).__name__}, not an nn.Module class: refused")


def _check_named_env(env_id: str, ckpt_path) -> None:
    try:
        factory = env_factory(env_id)
    except EnvError as exc:
        raise CheckpointError(f"checkpoint {ckpt_path}: {exc}") from None
    if factory is None or factory is remembered(env_id) or is_env_class(factory):
        return
    raise CheckpointError(f"checkpoint {ckpt_path} was trained on the env factory "
                          f"'{env_id}', a function: loading calls no function a checkpoint "
                          f"names; pass it again: actorcritic.load(..., env_fn=...)")


def _reload_note(path: str, named: bool) -> str:
    what = ("is a function, and loading calls no function a checkpoint names (an env class "
            "would load by name)" if named else "has no importable name")
    return (f"env factory '{path}' {what}: the agent can be loaded only with the same "
            f"factory passed again, actorcritic.load(run_dir, env_fn=...)")


def _check_env_fn(env_fn) -> None:
    if not callable(env_fn):
        raise ConfigError(f"env_fn must be a callable that returns a gymnasium.Env (a "
                          f"function or an Env class), got a {type(env_fn).__name__}")


def _check_encoder(encoder) -> None:
    if not (isinstance(encoder, type) and issubclass(encoder, nn.Module)):
        raise ConfigError(f"encoder must be an nn.Module class (built as "
                          f"Class(observation_space, **model.encoder_kwargs)), got "
                          f"{encoder!r}")


def _check_placement(cfg: Config, unnamed: list[str]) -> None:
    """Objects remembered only here work where the run's envs and model live here."""
    if not unnamed or registry.check(cfg).in_process:
        return
    raise ConfigError(f"{unnamed[0]} has no importable name, so it works with the placements "
                      f"that run in this process (a2c or ppo, algo.processes 1, run.backend "
                      f"local), not algo.name={cfg.algo.name} with run.backend="
                      f"{cfg.run.backend}, algo.processes={cfg.algo.processes}: define it at "
                      f"the top level of an importable module")
