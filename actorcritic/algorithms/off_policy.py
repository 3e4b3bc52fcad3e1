"""SAC and TD3: the replay sampler and a learner composed, run by the one loop (run/loop.py).

Here: `run_off_policy`, the registry's entry point for both, and the replay buffer's size
check; what the two learners share is in twin_critics.py.

    sampler.next()  -> train_freq vector steps stored in the buffer, Replay(buffer, k)
    learner.update  -> k gradient steps: critics, then (every policy_delay) actor and
                       targets; SAC also its entropy temperature
"""

from __future__ import annotations

import numpy as np
import torch

from actorcritic.config import Config
from actorcritic.errors import ConfigError
from actorcritic.memory import available_memory
from actorcritic.models.precision import (
    bfloat16_matrix_products,
    matrix_products_line,
    native_bfloat16,
)
from actorcritic.run.loop import run_loop
from actorcritic.samplers.replay import ReplaySampler
from actorcritic.samplers.replay_buffer import ReplayBuffer


def check_replay_fits(cfg: Config, obs_space, action_space) -> None:
    """A replay buffer larger than the memory this machine has free is one ConfigError, when
    the run starts and before anything is written."""
    from actorcritic.models.off_policy import check_off_policy_spaces

    check_off_policy_spaces(cfg, obs_space, action_space)
    need = ReplayBuffer.bytes_for(cfg.algo.buffer_size, obs_space,
                                  int(np.prod(action_space.shape)))
    free = available_memory()
    if free is not None and need > free:
        raise ConfigError(f"algo.buffer_size={cfg.algo.buffer_size:,} transitions of "
                          f"{cfg.env.id} need {need / 2**30:.1f} GiB, and this machine has "
                          f"{free / 2**30:.1f} GiB available: lower algo.buffer_size")


def run_off_policy(session, model, resume=None) -> None:
    """SAC or TD3 on a vector of envs stepped by this process."""
    from actorcritic.algorithms.sac import SACLearner
    from actorcritic.algorithms.td3 import TD3Learner
    from actorcritic.envs import make_vector_env

    cfg = session.cfg
    envs = make_vector_env(cfg.env, seed=cfg.run.seed, mode="train")
    try:
        action_dim = int(np.prod(envs.single_action_space.shape))
        buffer = ReplayBuffer(cfg.algo.buffer_size, envs.single_observation_space, action_dim)
        learner_class = SACLearner if cfg.algo.name == "sac" else TD3Learner
        learner = learner_class(model, cfg, session.device, action_dim)
        obs, reset_next = envs.reset(seed=cfg.run.seed), np.zeros(envs.num_envs, bool)
        if resume is not None:
            obs, reset_next = _resume(session, envs, buffer, learner, resume, obs, reset_next)
        sampler = ReplaySampler(envs, model, buffer, cfg, session.env_steps, obs, reset_next)
    except BaseException:
        envs.close()
        raise
    held = "in each checkpoint" if cfg.algo.replay_in_checkpoint else \
        "left out of checkpoints (algo.replay_in_checkpoint=false)"
    session.progress.message(
        f"{cfg.algo.name} on replay: ReplaySampler, {envs.num_envs} env(s), "
        f"{cfg.algo.gradient_steps} gradient step(s) of {cfg.algo.batch_size} every "
        f"{cfg.algo.train_freq} vector step(s) from {cfg.algo.learning_starts:,} env steps; "
        f"replay buffer of {cfg.algo.buffer_size:,} transitions "
        f"({buffer.nbytes / 2**20:,.0f} MiB), {held}")
    bfloat16 = cfg.model.precision == "bfloat16"
    if bfloat16:
        session.progress.message(matrix_products_line(session.device.type, native_bfloat16()))
    with bfloat16_matrix_products(bfloat16 and session.device.type == "cpu"):
        run_loop(session, model, sampler, learner)


def _resume(session, envs, buffer: ReplayBuffer, learner, resume, obs, reset_next):
    """The learner's state, the buffer, the RNG and, where the envs can be captured, the
    envs and the observation they stopped at (otherwise the envs start new episodes)."""
    from actorcritic.envs import snapshot as env_snapshot

    learner.load_state(resume)
    torch.set_rng_state(resume.tensors["extra.rng_torch"])
    replay = resume.meta.get("replay")
    if replay is None:
        session.progress.message(
            "resume: the checkpoint holds no replay buffer (algo.replay_in_checkpoint=false), "
            "so it refills from empty; learning continues at once on what it collects")
    else:
        buffer.load(resume.tensors, replay["pos"], replay["size"])
    if env_snapshot.restore_from_checkpoint(envs, resume):
        return (resume.tensors["extra.carry.obs"].numpy().copy(),
                resume.tensors["extra.carry.reset_next"].numpy().copy())
    session.progress.message("resume: this env backend cannot be snapshotted, so the envs "
                             "start new episodes")
    return envs.reset(seed=session.cfg.run.seed + session.updates), reset_next
