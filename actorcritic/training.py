"""`train()`: the one entry point for every algorithm (the CLI's `train` calls it).

Nothing in the package below this module imports it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import torch

from actorcritic import registry
from actorcritic.config import Config, apply_overrides, load_config
from actorcritic.custom import adopt, readopt
from actorcritic.envs import spaces_for
from actorcritic.errors import CheckpointError, EnvError, RunFailure
from actorcritic.models.actor_critic import ActorCritic, build_model, place_encoders, set_threads
from actorcritic.models.precision import flush_denormals, subnormals_flushed
from actorcritic.run.checkpoint import (
    Checkpoint,
    CheckpointDir,
    load_checkpoint,
    load_model_exact,
    load_model_partial,
    resolve_checkpoint,
)
from actorcritic.run.evaluate import evaluate_policy
from actorcritic.run.lock import RunDirLock
from actorcritic.run.session import (
    RunSession,
    check_resume_compatible,
    default_run_dir,
    load_run_config,
    prepare_run_dir,
    resolve_device,
)

__all__ = ["build_model", "spaces_for", "train"]


def _open_resumed(run_dir: Path, overrides: list[str] | None, env_fn, encoder):
    """Config, newest checkpoint and lock of a run to continue (nothing is written)."""
    saved = load_run_config(run_dir)
    lock = RunDirLock(run_dir).acquire()
    try:
        cfg = apply_overrides(load_run_config(run_dir), overrides)
        check_resume_compatible(saved, cfg, run_dir)
        readopt(cfg, env_fn, encoder, f"run {run_dir}")
        latest = CheckpointDir(run_dir).latest()
        if latest is None:
            raise CheckpointError(f"cannot resume {run_dir}: no checkpoint in "
                                  f"{run_dir}/checkpoints")
        return cfg, load_checkpoint(latest), lock
    except BaseException:
        lock.release()
        raise


def _new_model(cfg: Config, spaces) -> ActorCritic:
    """The configured model, initialized from the run's seed."""
    obs_space, action_space = spaces
    registry.check_spaces(cfg, obs_space, action_space)
    set_threads(cfg, obs_space)
    torch.manual_seed(cfg.run.seed)
    return build_model(cfg, obs_space, action_space)


def _device_for(cfg: Config) -> tuple[torch.device, str]:
    """run.device resolved, unless the placement trains on the CPU only (A3C's workers):
    then the CPU, and the line that says so."""
    device, why = resolve_device(cfg.run.device), registry.check(cfg).cpu_only
    if device.type == "cpu" or not why:
        return device, ""
    return torch.device("cpu"), (f"{cfg.algo.name} trains on the CPU ({why}); ignoring "
                                 f"run.device={cfg.run.device}")


def _train_in_session(session: RunSession, model: ActorCritic, resume_ckpt) -> dict:
    """Run the algorithm, evaluate, write the summary; a failure still writes one."""
    cfg = session.cfg
    session.install_signal_handlers()
    try:
        registry.runner_for(cfg)(session, model, resume_ckpt)
    except (RunFailure, EnvError) as exc:
        session.stop_reason = exc.stop_reason if isinstance(exc, RunFailure) else "env-error"
        session.summary(None, status="failed")
        raise
    status = "interrupted" if session.stop_reason in ("SIGINT", "SIGTERM") else "finished"
    final_eval = None
    if cfg.run.eval_episodes and status == "finished":
        mix = session.scenario_windows.windows
        session.progress.message(f"evaluating {cfg.run.eval_episodes} episodes" + (
            f" of each of {len(mix)} scenarios" if mix else ""))
        final_eval = evaluate_policy(model, cfg.env, cfg.run.eval_episodes,
                                     greedy=cfg.run.eval_greedy, seed=cfg.run.seed + 10_000,
                                     device=session.device)
    return session.summary(final_eval, status=status)


def lineage(ckpt: Checkpoint) -> dict:
    """What a run started with --init-from records of its start: the checkpoint, the env
    steps its weights had trained for (those of its own init-from included), and, from a zoo
    agent, the agent's name, the command, date and commit that trained it and its run's
    final training mean-100 (read from the agent's summary.json where that reads), and the
    agent's own start, so a chain of runs keeps every link.
    A budget ("within 10M env steps") is judged on these steps plus the run's own
    (benchmarks/zoo_results.py)."""
    before = ckpt.meta.get("init_from", {}).get("env_steps", 0)
    out = {"checkpoint": str(ckpt.path), "env_steps": ckpt.meta["counters"]["env_steps"] + before}
    if "zoo" in ckpt.meta:
        out["zoo"] = ckpt.meta["zoo"]["name"]
        try:
            trained = json.loads((Path(ckpt.path).parent / "summary.json").read_text())
        except (OSError, ValueError):
            trained = {}
        out.update({k: trained[k] for k in ("command", "date", "commit", "mean_return_100",
                                            "init_from") if k in trained})
    return out


def _new_config(cfg: Config | str, overrides: list[str] | None, env_fn, encoder
                ) -> tuple[Config, list[str]]:
    """The config of a new run, pointed at the user's own env and encoder (custom.py; the
    caller's Config keeps its values), and the lines to say about them at start."""
    if not isinstance(cfg, Config):
        cfg = load_config(cfg, overrides)
    elif overrides:
        cfg = apply_overrides(cfg, overrides)
    cfg = copy.deepcopy(cfg)
    return cfg, adopt(cfg, env_fn, encoder)


def train(cfg: Config | str = "cartpole-a2c", run_dir: str | Path | None = None, *,
          overrides: list[str] | None = None, resume: str | Path | None = None,
          init_from: str | Path | None = None, overwrite: bool = False,
          quiet: bool = False, env_fn: Callable | None = None,
          encoder: type | None = None) -> dict:
    """Train and evaluate; return the summary (also written to RUN_DIR/summary.json).

    cfg: a Config, or a preset name / YAML path. resume: a run dir to continue exactly
    from its newest checkpoint. init_from: a checkpoint whose matching tensors seed a new
    model. The run dir is locked for the whole run: a second process is refused.
    env_fn: your own env, a callable (a function or a gymnasium.Env class) that returns a
    Gymnasium env, in place of env.id. encoder: your own nn.Module class, built as
    Class(observation_space, **model.encoder_kwargs), with `out_size` features. Each is
    recorded by its import path (docs/CUSTOM.md); with resume, pass the same ones again.
    """
    was_flushing = subnormals_flushed()  # run.flush_denormals is the run's, not the caller's
    try:
        return _train(cfg, run_dir, overrides, resume, init_from, overwrite, quiet, env_fn,
                      encoder)
    finally:
        torch.set_flush_denormal(was_flushing)


def _train(cfg, run_dir, overrides, resume, init_from, overwrite, quiet, env_fn, encoder
           ) -> dict:
    """train() within the run's subnormal mode."""
    resume_ckpt = init_ckpt = None
    notes: list[str] = []
    if resume is not None:
        run_dir = Path(resume)
        cfg, resume_ckpt, lock = _open_resumed(run_dir, overrides, env_fn, encoder)
    else:
        cfg, notes = _new_config(cfg, overrides, env_fn, encoder)
    notes.append(flush_denormals(cfg.run.flush_denormals))  # before torch starts its threads
    if resume is None:
        init_ckpt = load_checkpoint(resolve_checkpoint(init_from)) if init_from else None
        spaces = spaces_for(cfg)  # a bad env fails here, before the run dir exists
        model = _new_model(cfg, spaces)  # and so does an impossible model
        run_dir = Path(run_dir) if run_dir else default_run_dir(cfg)
        lock = prepare_run_dir(run_dir, overwrite)
    try:
        # Load before the session touches the run dir (a resumed session truncates its logs).
        if resume_ckpt is not None:
            model = _new_model(cfg, spaces_for(cfg))
            load_model_exact(model, resume_ckpt)
        elif init_ckpt is not None:
            loaded, skipped = load_model_partial(model, init_ckpt)
        device, device_note = _device_for(cfg)
        session = RunSession(cfg, run_dir, device, resume=resume_ckpt, quiet=quiet,
                             lock=lock,
                             init_from=lineage(init_ckpt) if init_ckpt else None)
    except BaseException:
        lock.release()
        raise
    try:
        model.to(session.device)
        precision = place_encoders(model, session.device.type)  # auto: decided here
        for note in (*notes, device_note, precision.line() if precision else None):
            if note:
                session.progress.message(note)
        if resume_ckpt is not None:
            session.progress.message(f"resuming {run_dir} from {resume_ckpt.path.name} at "
                                     f"{session.env_steps} env steps")
        elif init_ckpt is not None:
            session.progress.message(
                f"init-from {init_ckpt.path} (trained {session.init_from['env_steps']:,} env "
                f"steps): loaded {len(loaded)} tensors, skipped {len(skipped)}"
                + (f" ({', '.join(skipped)})" if skipped else ""))
        return _train_in_session(session, model, resume_ckpt)
    finally:
        session.close()
