"""The replay sampler of SAC and TD3: it steps the vector env with the acting policy (uniform
random actions before `algo.learning_starts`), stores each transition in a replay buffer
and hands the learner `Collected(data=Replay)`: the buffer and how many gradient steps to
take from it (`algo.gradient_steps` per `algo.train_freq` vector steps, as rl-zoo names
them).

Transitions follow the envs' next-step autoreset (envs/vector.py): the step that ends an
episode returns its final observation, so (obs, action, reward, next obs, terminated) is
stored exactly as it happened, truncated episodes included (their next obs is the final
observation to bootstrap from); the reset step that follows is not a transition and is
never stored.
"""

from __future__ import annotations

import numpy as np
import torch

from actorcritic.envs import snapshot as env_snapshot
from actorcritic.envs.vector import VecEnv
from actorcritic.models.off_policy import OffPolicyActorCritic
from actorcritic.samplers.experience import Collected, Replay
from actorcritic.samplers.replay_buffer import ReplayBuffer
from actorcritic.samplers.rollout import check_finite


class ReplaySampler:
    """Steps the envs `train_freq` times per item; stores every transition. Its state (the
    buffer, in periodic and final checkpoints unless `algo.replay_in_checkpoint` is off; the
    observation the next step acts
    on, which envs reset next, and the envs' snapshot where they can be captured) goes into
    checkpoints, so a resumed run continues the uninterrupted one bit for bit."""

    def __init__(self, envs: VecEnv, model: OffPolicyActorCritic, buffer: ReplayBuffer, cfg,
                 env_steps: int, obs: np.ndarray, reset_next: np.ndarray):
        self.envs, self.model, self.buffer, self.cfg = envs, model, buffer, cfg
        self.env_steps = env_steps
        self.obs, self.reset_next = obs, reset_next
        space = envs.single_action_space
        self.low = torch.as_tensor(space.low, dtype=torch.float32).flatten()
        self.span = torch.as_tensor(space.high, dtype=torch.float32).flatten() - self.low

    def _actions(self) -> np.ndarray:
        n = self.envs.num_envs
        if self.env_steps < self.cfg.algo.learning_starts:  # uniform over the Box
            return (self.low + self.span * torch.rand(n, self.low.numel())).numpy()
        obs = torch.as_tensor(self.obs)
        return self.model.act(obs, None, ())[0].numpy()

    def next(self, log_now: bool) -> Collected:
        cfg, n = self.cfg, self.envs.num_envs
        episodes = []
        for _ in range(cfg.algo.train_freq):
            actions = self._actions()
            shape = (n, *self.envs.single_action_space.shape)
            next_obs, rewards, term, trunc, finished = self.envs.step(actions.reshape(shape))
            if cfg.run.nan_guard:
                check_finite("reward", rewards, self.env_steps)
                if next_obs.dtype.kind == "f":
                    check_finite("observation", next_obs, self.env_steps)
            real = ~self.reset_next  # a reset step is not a transition
            self.buffer.add(self.obs[real], actions[real], rewards[real], next_obs[real],
                            term[real])
            self.reset_next = term | trunc
            self.obs = next_obs
            self.env_steps += n
            episodes += finished
        learning = self.env_steps >= cfg.algo.learning_starts
        return Collected(n * cfg.algo.train_freq,
                         Replay(self.buffer, cfg.algo.gradient_steps if learning else 0),
                         [(0, episodes)],
                         {"replay/size": float(self.buffer.size)} if log_now else {})

    def publish(self, version: int, model: torch.nn.Module) -> None:
        """The model acts here: nothing to send."""

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """The best checkpoint is for playing and exporting (resume reads the newest periodic
        or final one: CheckpointDir.latest), so it holds no replay buffer."""
        if self.cfg.algo.replay_in_checkpoint and meta.get("checkpoint") != "best":
            tensors.update(self.buffer.state_tensors())
            meta["replay"] = {"pos": self.buffer.pos, "size": self.buffer.size}
        tensors["extra.carry.obs"] = torch.as_tensor(self.obs).clone()
        tensors["extra.carry.reset_next"] = torch.as_tensor(self.reset_next).clone()
        env_snapshot.add_to_checkpoint(self.envs, tensors, meta)

    def stop(self) -> None:
        """Nothing steps the model but the learner here."""

    def close(self) -> None:
        self.envs.close()
