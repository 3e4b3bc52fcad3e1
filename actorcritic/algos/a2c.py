"""A2C: one process (or several, `algo.processes`) collecting rollouts from a vector of
envs, one synchronous update per rollout (the shared update pieces are in update.py)."""

from __future__ import annotations

import torch
from torch import nn

from actorcritic.algos.update import (
    apply_update,
    lr_at,
    make_optimizer,
    reuses_acting_graph,
    rollout_loss,
)


def run_a2c(session, model: nn.Module, resume=None) -> None:
    """Synchronous A2C: one process, a vector of envs, one update per rollout."""
    import os

    import numpy as np

    from actorcritic.algos.a2c_parallel import (
        Helpers,
        flat_gradients,
        share_of,
        torch_threads,
        valid_count,
    )
    from actorcritic.algos.numpy_update import NumpyA2CUpdate, supports_numpy_update
    from actorcritic.algos.overlap import OverlappedRollouts
    from actorcritic.algos.rollout import ActionAdapter, Carry, RolloutBuffer, collect_rollout
    from actorcritic.envs import make_vector_env
    from actorcritic.envs import snapshot as env_snapshot
    from actorcritic.errors import ConfigError, EnvError, NonFiniteError, WorkerFailure
    from actorcritic.models.numpy_actor import NumpyActor, supports_numpy_acting
    from actorcritic.run.checkpoint import load_optimizer, model_tensors, optimizer_tensors

    cfg, device = session.cfg, session.device
    parallel = cfg.algo.processes > 1
    if parallel and device.type != "cpu":
        raise ConfigError("algo.processes > 1 runs on the CPU: set run.device=cpu")
    if cfg.algo.overlap and device.type != "cpu":
        raise ConfigError("algo.overlap runs on the CPU: set run.device=cpu")
    # Runs whose envs are stepped elsewhere (helper processes, the acting thread) keep no
    # env state in their checkpoints.
    envs_elsewhere = parallel or cfg.algo.overlap
    helpers = overlap = None
    envs = make_vector_env(share_of(cfg).env if parallel else cfg.env, seed=cfg.run.seed,
                           mode="train")
    try:
        optimizer = make_optimizer(model.parameters(), cfg.algo)
        params = [p for p in model.parameters() if p.requires_grad]
        obs = envs.reset(seed=cfg.run.seed)
        carry = Carry.start(obs, model, device)
        if resume is not None:
            load_optimizer(optimizer, resume)
            torch.set_rng_state(resume.tensors["extra.rng_torch"])
            snap = resume.meta.get("env_snapshot")
            if envs_elsewhere or "extra.carry.obs" not in resume.tensors:
                # These runs keep no env state: every env starts anew.
                session.progress.message(
                    "resume: with algo.processes > 1 or algo.overlap the envs start new "
                    "episodes" if envs_elsewhere
                    else "resume: the checkpoint holds no env state (it was written with "
                         "algo.processes > 1 or algo.overlap), so the envs start new episodes")
                carry = Carry.start(envs.reset(seed=cfg.run.seed + session.updates), model,
                                    device)
            elif snap is not None and env_snapshot.can_snapshot(envs):
                _restore_carry(carry, resume, device)
                arrays = {k: v.numpy() for k, v in resume.section("env").items()}
                env_snapshot.restore(envs, arrays, snap)
            else:
                session.progress.message("resume: this env backend cannot be snapshotted, "
                                         "so the envs start new episodes")
                carry = Carry.start(envs.reset(seed=cfg.run.seed + session.updates), model,
                                    device)
        buf = RolloutBuffer(cfg.algo.num_steps, envs.num_envs, envs.single_observation_space,
                            envs.single_action_space, device)
        to_env = ActionAdapter(envs.single_action_space)
        steps_per_update = cfg.algo.num_steps * cfg.env.num_envs
        keep_graph = reuses_acting_graph(model, cfg.algo)
        numpy_update = None
        if parallel:
            # Auto threads: the cores are split between the processes, but the tail of each
            # update (combine, clip, step) runs on all of them while the helpers wait.
            tail_threads = torch.get_num_threads()
            if cfg.run.torch_threads == 0:
                tail_threads = os.cpu_count() or 1
                torch.set_num_threads(max(1, tail_threads // cfg.algo.processes))
            model.share_memory()
            own_grad = torch.zeros(sum(p.numel() for p in params))
            flat_gradients(params, own_grad)
            helpers = Helpers(cfg, model, own_grad.numel(), cfg.run.seed + session.updates)
        elif cfg.algo.overlap:
            # The acting thread and the training thread each get half of the torch threads.
            torch.set_num_threads(max(1, torch.get_num_threads() // 2))
            # The acting thread samples from a stream of its own, so that nothing the
            # training thread draws (a stochastic evaluation) changes the run.
            acting_rng = torch.Generator().manual_seed(cfg.run.seed + session.updates)

            def collect(acting_model: nn.Module, rollout: RolloutBuffer) -> list:
                return collect_rollout(envs, acting_model, rollout, carry, to_env,
                                       cfg.run.nan_guard, keep_graph, None,
                                       cfg.algo.reward_scale, acting_rng)

            second = RolloutBuffer(cfg.algo.num_steps, envs.num_envs,
                                   envs.single_observation_space, envs.single_action_space,
                                   device)
            overlap = OverlappedRollouts(model, (buf, second), collect)
        elif cfg.run.numpy_update and not keep_graph and supports_numpy_update(model, optimizer):
            # After load_optimizer (it takes the loaded state over) and before the NumPy
            # actor: it rebinds the parameters to one flat tensor, the actor views them.
            numpy_update = NumpyA2CUpdate(model, optimizer, cfg.algo, cfg.run.nan_guard)
        actor = None
        if cfg.run.numpy_acting and not keep_graph and not envs_elsewhere \
                and supports_numpy_acting(model):
            actor = NumpyActor(model, cfg.run.seed)
            if resume is not None and "numpy_actor_rng" in resume.meta:
                actor.set_state(resume.meta["numpy_actor_rng"])

        def checkpoint(name: str) -> None:
            tensors = model_tensors(model)
            opt_tensors, opt_meta = optimizer_tensors(optimizer)
            tensors.update(opt_tensors)
            if not envs_elsewhere:
                tensors.update(_carry_tensors(carry))
            tensors["extra.rng_torch"] = torch.get_rng_state()
            extra = {"optimizer": opt_meta, "algo": "a2c"}
            if actor is not None:
                extra["numpy_actor_rng"] = actor.get_state()
            if not envs_elsewhere and env_snapshot.can_snapshot(envs):
                arrays, values = env_snapshot.capture(envs)
                tensors.update({f"env.{k}": torch.from_numpy(np.array(v))
                                for k, v in arrays.items()})
                extra["env_snapshot"] = values
            session.save(name, tensors, extra)

        session.checkpoint = checkpoint
        while not session.should_stop():
            lr = lr_at(cfg.algo, session.env_steps, cfg.run.total_steps, session.window.count)
            for group in optimizer.param_groups:
                group["lr"] = lr
            log_now = (session.updates + 1) % cfg.run.log_every == 0  # after add_steps
            if overlap is not None:
                # Collected by the acting thread during the last update, with the
                # parameters from before it (overlap.py).
                collected = overlap.next()
                rollout, acting_model, episodes = collected.buf, collected.model, \
                    collected.episodes
            else:
                if helpers is not None:
                    helpers.start_rollouts(log_now)
                episodes = collect_rollout(envs, model, buf, carry, to_env, cfg.run.nan_guard,
                                           keep_graph, actor, cfg.algo.reward_scale)
                rollout, acting_model = buf, model
            session.add_steps(steps_per_update)
            session.record_episodes(episodes)
            if numpy_update is not None:
                stats = numpy_update(buf, session.updates, with_stats=log_now)
            else:
                acted, rollout.acted = rollout.acted, None
                # The gradient is taken at the parameters that acted.
                loss, stats = rollout_loss(acting_model, rollout.to(device), cfg.algo,
                                           with_stats=log_now, acted=acted)
                if helpers is not None:
                    own_grad.zero_()
                    loss.backward()
                    with torch_threads(tail_threads):
                        loss, stats, by_rank = helpers.finish_update(
                            own_grad, valid_count(buf), loss, stats)
                        apply_update(model, optimizer, params, loss, stats, cfg,
                                     session.updates, log_now)
                    for rank, finished in by_rank.items():
                        session.record_episodes(finished, worker=rank)
                else:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if overlap is not None:
                        overlap.take_gradients(collected)
                    apply_update(model, optimizer, params, loss, stats, cfg, session.updates,
                                 log_now)
                    if overlap is not None:
                        overlap.release(collected)
            if log_now:
                stats["charts/lr"] = lr
                session.log(stats)
            session.end_of_update(model, logged=log_now)
        checkpoint("final")
    except NonFiniteError:
        # The parameters are still those of the last good update: keep them.
        checkpoint("final")
        raise
    except EnvError as exc:
        # An env crashed or hung mid-run: keep what was learned before it did.
        if getattr(session, "checkpoint", None) is None:
            raise
        checkpoint("final")
        raise EnvError(f"{exc} (the last good checkpoint was written)") from None
    except WorkerFailure:
        # A helper process (algo.processes) died or hung: keep the last good parameters.
        if getattr(session, "checkpoint", None) is not None:
            checkpoint("final")
        raise
    finally:
        if helpers is not None:
            helpers.close()
        if overlap is not None:
            overlap.close()
        envs.close()


def _carry_tensors(carry) -> dict[str, torch.Tensor]:
    out = {"extra.carry.obs": carry.obs, "extra.carry.first": carry.first,
           "extra.carry.reset_next": carry.reset_next}
    out.update({f"extra.carry.state.{i}": s for i, s in enumerate(carry.state)})
    return out


def _restore_carry(carry, ckpt, device) -> None:
    t = ckpt.tensors
    carry.obs.copy_(t["extra.carry.obs"])
    carry.first.copy_(t["extra.carry.first"])
    carry.reset_next.copy_(t["extra.carry.reset_next"])
    carry.state = tuple(t[f"extra.carry.state.{i}"].to(device) for i in range(len(carry.state)))
