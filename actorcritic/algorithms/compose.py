"""A2C and PPO: a sampler and a learner composed, run by the one loop (run/loop.py).

`choose_path` is the one place that picks how a run samples and learns (synchronous,
overlapped or over processes; torch, NumPy or replayed acting; torch or NumPy update for
A2C, the PPO learner of ppo.py for PPO),
in the order their set-up must happen, and says at start what it picked and why a
faster path was refused. Every choice is tested equal to the plain path.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from actorcritic.algorithms.a2c import NumpyLearner, ProcessLearner, TorchLearner
from actorcritic.algorithms.ppo import PPOLearner
from actorcritic.algorithms.reward_scaling import reward_transform
from actorcritic.algorithms.update import accelerators_line, make_optimizer, reuses_acting_graph
from actorcritic.errors import ConfigError
from actorcritic.registry import placement_label
from actorcritic.run.loop import run_loop
from actorcritic.samplers.overlap import OverlapSampler
from actorcritic.samplers.rollout import Carry, RolloutBuffer
from actorcritic.samplers.sync import SyncSampler, restore_carry


def run_vector(session, model: nn.Module, resume=None, make_envs=None) -> None:
    """A2C or PPO on a vector of envs stepped by this process (or its helpers): one update
    (A2C: one step; PPO: epochs of minibatch steps) per rollout. `make_envs()` gives envs
    stepped elsewhere behind the same interface (Ray actors: distributed/ray_envs.py)."""
    from actorcritic.envs import make_vector_env
    from actorcritic.samplers.processes import share_of

    cfg = session.cfg
    for key, on in (("algo.processes > 1", cfg.algo.processes > 1),
                    ("algo.overlap", cfg.algo.overlap)):
        if on and session.device.type != "cpu":
            raise ConfigError(f"{key} runs on the CPU: set run.device=cpu")
    parallel = cfg.algo.processes > 1
    envs = make_envs() if make_envs is not None else make_vector_env(
        share_of(cfg).env if parallel else cfg.env, seed=cfg.run.seed, mode="train")
    try:
        sampler, learner = choose_path(session, model, envs, resume)
    except BaseException:
        envs.close()
        raise
    run_loop(session, model, sampler, learner)


def start_carry(session, model: nn.Module, envs, resume, envs_elsewhere: bool) -> Carry:
    """The envs' first observations, or on resume the checkpoint's carry and env state
    where the run kept them (a run that cannot restore them starts new episodes)."""
    from actorcritic.envs import snapshot as env_snapshot

    cfg, device = session.cfg, session.device
    carry = Carry.start(envs.reset(seed=cfg.run.seed), model, device)
    if resume is None:
        return carry
    torch.set_rng_state(resume.tensors["extra.rng_torch"])
    if envs_elsewhere or "extra.carry.obs" not in resume.tensors:
        session.progress.message(
            "resume: with algo.processes > 1 or algo.overlap the envs start new episodes"
            if envs_elsewhere else
            "resume: the checkpoint holds no env state (it was written with "
            "algo.processes > 1 or algo.overlap), so the envs start new episodes")
    elif env_snapshot.restore_from_checkpoint(envs, resume):
        restore_carry(carry, resume, device)
        return carry
    else:
        session.progress.message("resume: this env backend cannot be snapshotted, so the "
                                 "envs start new episodes")
    return Carry.start(envs.reset(seed=cfg.run.seed + session.updates), model, device)


def choose_path(session, model: nn.Module, envs, resume):
    """(sampler, learner) for this run, logged with the reasons for what was refused."""
    from actorcritic.run.checkpoint import load_optimizer

    cfg, device = session.cfg, session.device
    envs_elsewhere = cfg.algo.processes > 1 or cfg.algo.overlap
    ppo = cfg.algo.name == "ppo"
    optimizer = make_optimizer(model.parameters(), cfg.algo)
    # The order matters: the optimizer state is loaded before the NumPy update takes it
    # over, and the NumPy update rebinds the parameters before the NumPy actor views them.
    carry = start_carry(session, model, envs, resume, envs_elsewhere)
    if resume is not None:
        load_optimizer(optimizer, resume)
    buf = RolloutBuffer(cfg.algo.num_steps, envs.num_envs, envs.single_observation_space,
                        envs.single_action_space, device)
    keep_graph = reuses_acting_graph(model, cfg.algo) and not ppo
    refused = ["acting-graph reuse refused: PPO takes its gradients at parameters that "
               "change during the update" if ppo and reuses_acting_graph(model, cfg.algo)
               else ""]
    rewards = reward_transform(cfg.algo, envs.num_envs)
    if resume is not None and not envs_elsewhere:
        rewards.load_state_tensors(resume.tensors)
    parts = (session, model, optimizer, envs, carry, buf, keep_graph)
    if cfg.algo.processes > 1:
        sampler, learner = _over_processes(*parts)
        acting, update = "torch", "torch (gradients summed over processes)"
    elif cfg.algo.overlap:
        sampler, learner = _overlapped(*parts, rewards)
        acting, update = "torch, one update behind (overlap)", "ppo, torch" if ppo else "torch"
    else:
        sampler, learner, acting, update = _synchronous(*parts, rewards, resume, refused)
    note = "; ".join(r for r in refused if r)
    session.progress.message(f"{cfg.algo.name} on {placement_label(cfg)}: "
                             f"{type(sampler).__name__}, acting {acting}, update {update}; "
                             f"{accelerators_line(acting, update)}"
                             + (f" ({note})" if note else ""))
    return sampler, learner



def _ppo_learner(session, model, optimizer, overlap=None) -> PPOLearner:
    cfg = session.cfg
    return PPOLearner(model, optimizer, cfg, session.device,
                      lambda: session.env_steps / cfg.run.total_steps, overlap)


def _overlapped(session, model, optimizer, envs, carry, buf, keep_graph, rewards):
    """algo.overlap: an acting thread collects the next rollout during the update."""
    cfg = session.cfg
    # The acting thread and the training thread each get half of the torch threads;
    # the acting thread samples from a stream of its own, so nothing the training
    # thread draws (a stochastic evaluation) changes the run.
    torch.set_num_threads(max(1, torch.get_num_threads() // 2))
    acting_rng = torch.Generator().manual_seed(cfg.run.seed + session.updates)
    sampler = OverlapSampler(envs, model, carry, buf, cfg, keep_graph, rewards, acting_rng,
                             session.updates)
    if cfg.algo.name == "ppo":
        return sampler, _ppo_learner(session, model, optimizer, sampler.overlap)
    return sampler, TorchLearner(model, optimizer, cfg, session.device,
                                 overlap=sampler.overlap)


def _synchronous(session, model, optimizer, envs, carry, buf, keep_graph, rewards, resume,
                 refused: list[str]):
    """One thread acts and learns: (sampler, learner, acting name, update name)."""
    from actorcritic.accelerators.numpy_acting import NumpyActor, supports_numpy_acting
    from actorcritic.accelerators.numpy_ppo import NumpyPPOLearner
    from actorcritic.accelerators.numpy_update import NumpyA2CUpdate, supports_numpy_update

    cfg = session.cfg
    numpy_ok = supports_numpy_update(model, optimizer)
    if cfg.algo.name == "ppo" and cfg.run.numpy_update and numpy_ok:
        learner = NumpyPPOLearner(NumpyA2CUpdate(model, optimizer, cfg.algo, cfg.run.nan_guard),
                                  cfg, lambda: session.env_steps / cfg.run.total_steps)
        update = "ppo, numpy"
    elif cfg.algo.name == "ppo":
        learner, update = _ppo_learner(session, model, optimizer), "ppo, torch"
        refused.append(_why_not_numpy_update(cfg, keep_graph, numpy_ok))
    elif cfg.run.numpy_update and not keep_graph and numpy_ok:
        learner, update = NumpyLearner(NumpyA2CUpdate(model, optimizer, cfg.algo,
                                                      cfg.run.nan_guard)), "numpy"
    else:
        learner, update = TorchLearner(model, optimizer, cfg, session.device), "torch"
        refused.append(_why_not_numpy_update(cfg, keep_graph, numpy_ok))
    actor = None
    if cfg.run.numpy_acting and not keep_graph and supports_numpy_acting(model):
        actor = NumpyActor(model, cfg.run.seed)
        if resume is not None and "numpy_actor_rng" in resume.meta:
            actor.set_state(resume.meta["numpy_actor_rng"])
    acting = "numpy" if actor else "torch, recorded for replay" if keep_graph else "torch"
    sampler = SyncSampler(envs, model, carry, buf, cfg, keep_graph, rewards, actor,
                          version=session.updates)
    return sampler, learner, acting, update


def _why_not_numpy_update(cfg, keep_graph: bool, supported: bool) -> str:
    if not cfg.run.numpy_update:
        return ""  # not asked for
    if keep_graph:
        return "numpy update refused: a CNN, whose acting passes are replayed"
    if not supported:
        return ("numpy update refused: it covers small MLPs with a Discrete head on the CPU, "
                "without model.normalize_obs")
    return ""


def _over_processes(session, model, optimizer, envs, carry, buf, keep_graph):
    """algo.processes: helpers share the model's memory and write their gradients into
    shared rows; the cores are split between the processes, except for the update's
    tail (combine, clip, step), which runs on all of them while the helpers wait."""
    from actorcritic.samplers.processes import Helpers, flat_gradients

    cfg = session.cfg
    tail_threads = torch.get_num_threads()
    if cfg.run.torch_threads == 0:
        tail_threads = os.cpu_count() or 1
        torch.set_num_threads(max(1, tail_threads // cfg.algo.processes))
    model.share_memory()
    params = [p for p in model.parameters() if p.requires_grad]
    own_grad = torch.zeros(sum(p.numel() for p in params))
    flat_gradients(params, own_grad)
    helpers = Helpers(cfg, model, own_grad.numel(), session.updates)
    sampler = SyncSampler(envs, model, carry, buf, cfg, keep_graph,
                          reward_transform(cfg.algo, envs.num_envs), helpers=helpers,
                          version=session.updates)
    return sampler, ProcessLearner(model, optimizer, cfg, session.device, helpers, own_grad,
                                   tail_threads)
