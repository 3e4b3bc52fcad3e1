"""Atari envs: ids, wrapper semantics, the three backends, and a short training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from actorcritic import zoo
from actorcritic.config import EnvConfig, load_config
from actorcritic.envs import is_atari, make_vector_env
from actorcritic.envs.atari import atari_game, make_atari_env
from actorcritic.errors import EnvError

BACKENDS = ["sync", "envpool", "ale_vector"]


@pytest.mark.parametrize("env_id,game", [
    ("ALE/Pong-v5", "pong"), ("Pong-v5", "pong"), ("PongNoFrameskip-v4", "pong"),
    ("SpaceInvadersNoFrameskip-v4", "space_invaders"), ("BreakoutDeterministic-v4", "breakout"),
    ("KungFuMaster-v0", "kung_fu_master"), ("ALE/MontezumaRevenge-v5", "montezuma_revenge"),
    ("HalfCheetah-v5", None), ("CartPole-v1", None), ("Humanoid-v5", None),
    ("ALE/Pong-ram-v5", None), ("ALE/PongNoFrameskip-v4", None), ("Pong-v3", None),
    ("gfootball/academy_empty_goal-v0", None), ("FooBar-v5", None),
])
def test_atari_ids(env_id, game):
    assert atari_game(env_id) == game
    assert is_atari(env_id) == (game is not None)


def _play(envs, steps, actions=None, seed=0):
    """Step `steps` times; return per-env rewards [steps, N], terminated, and episodes."""
    rng = np.random.default_rng(seed)
    n = envs.num_envs
    envs.reset(seed=seed)
    rewards, terms, episodes = [], [], []
    for _ in range(steps):
        a = rng.integers(0, envs.single_action_space.n, n) if actions is None else actions
        obs, r, term, trunc, eps = envs.step(np.asarray(a))
        rewards.append(r)
        terms.append(term)
        episodes.extend((len(rewards) - 1, e) for e in eps)
    return obs, np.array(rewards), np.array(terms), episodes


def _frames(backend: str, steps: int = 40, seed: int = 3, **settings):
    """Observations [steps + 1, 2, C, H, W] of 2 envs (mode="train") under the same random
    actions, and the first step's (reward, terminated, truncated) dtypes."""
    cfg = EnvConfig(backend=backend, **settings)
    envs = make_vector_env(cfg, 2, seed=seed, mode="train")
    try:
        rng = np.random.default_rng(seed)
        frames = [envs.reset(seed=seed)]
        for t in range(steps):
            obs, r, term, trunc, _ = envs.step(rng.integers(0, envs.single_action_space.n, 2))
            frames.append(obs)
            if t == 0:
                dtypes = (r.dtype, term.dtype, trunc.dtype)
        return envs.single_observation_space, np.stack(frames), dtypes
    finally:
        envs.close()


# How the fast backends are made to play exactly the reference (sync) game. FIRE at reset is
# off (sync presses FIRE then UP, EnvPool and ale_vector FIRE only) and each backend gets the
# no-op count it can match: EnvPool plays at least one raw-frame no-op at reset (so 1, which
# sync plays too), ale_vector plays none up to noop_max=1 (so 0, as sync). At reset
# ale_vector fills the older slots of the frame stack with zeros where sync and EnvPool
# repeat the first frame, so for it those slots are compared once real frames fill them.
MATCH = [("envpool", 1, False), ("ale_vector", 0, True)]


def assert_same_frames(frames, ref, channels: int, stack: int, zero_filled: bool):
    assert frames.shape == ref.shape
    assert len({ref[t].tobytes() for t in range(len(ref))}) > len(ref) // 2  # a moving game
    for t in range(len(ref)):
        newest = slice(-channels, None)
        assert np.array_equal(frames[t, :, newest], ref[t, :, newest]), f"step {t}"
        if not zero_filled or t >= stack - 1:
            assert np.array_equal(frames[t], ref[t]), f"step {t}: frame stack"


@pytest.mark.parametrize("backend, noop_max, zero_filled", MATCH)
def test_backends_agree_on_observations(backend, noop_max, zero_filled):
    """Pong, grayscale 84x84, 4 stacked frames: the same observations as the sync reference,
    frame by frame, for 40 steps of the same random actions."""
    settings = dict(id="PongNoFrameskip-v4", noop_max=noop_max, fire_reset=False)
    space, ref, _ = _frames("sync", **settings)
    got_space, frames, dtypes = _frames(backend, **settings)
    assert got_space.shape == space.shape == (4, 84, 84)
    assert got_space.dtype == space.dtype == np.uint8 and frames.dtype == np.uint8
    assert dtypes == (np.float32, np.bool_, np.bool_)
    assert 20 < ref[-1].mean() < 200  # a real frame, not zeros
    assert_same_frames(frames, ref, channels=1, stack=4, zero_filled=zero_filled)


@pytest.mark.parametrize("backend, noop_max, zero_filled", MATCH)
def test_backends_agree_on_color_and_size(backend, noop_max, zero_filled):
    """Breakout in RGB, resized to 50x40, 2 stacked frames: the same observations as the sync
    reference, frame by frame (episodic life off: the backends handle the reset step after
    a lost life differently)."""
    settings = dict(id="ALE/Breakout-v5", grayscale=False, resize=[50, 40], frame_stack=2,
                    noop_max=noop_max, fire_reset=False, episodic_life=False)
    space, ref, _ = _frames("sync", steps=60, **settings)
    got_space, frames, _ = _frames(backend, steps=60, **settings)
    assert got_space.shape == space.shape == (6, 50, 40)
    # channel-first RGB: the three channels of a frame differ (a colored game)
    assert not np.array_equal(ref[0, 0, 3], ref[0, 0, 4])
    assert_same_frames(frames, ref, channels=3, stack=2, zero_filled=zero_filled)


def _play_space_invaders(backend: str, num_envs: int, seed: int, mode: str):
    """1200 random steps of SpaceInvaders: rewards, terminated and episodes."""
    cfg = EnvConfig(id="SpaceInvadersNoFrameskip-v4", backend=backend)
    envs = make_vector_env(cfg, num_envs, seed=seed, mode=mode)
    try:
        return _play(envs, 1200, seed=seed)[1:]
    finally:
        envs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_episode_stats_report_raw_score_over_all_lives(backend):
    """Training rewards are clipped and lives end training episodes, but the reported
    episode is the whole game on the raw score (SpaceInvaders: every hit is >= 5 points)."""
    rewards, terms, episodes = _play_space_invaders(backend, 2, seed=1, mode="train")
    assert set(np.unique(rewards)) <= {0.0, 1.0}
    assert episodes, "no game finished"
    t, ep = episodes[0]
    clipped = rewards[: t + 1, ep.env_index].sum()
    lives_lost = terms[: t + 1, ep.env_index].sum()
    assert lives_lost >= 3  # 3 lives: each ended a training episode
    assert clipped >= 1 and ep.ret >= 5 * clipped and ep.ret % 5 == 0
    assert ep.length >= t - 5  # the whole game, not one life


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_mode_is_the_raw_game(backend):
    rewards, terms, episodes = _play_space_invaders(backend, 1, seed=2, mode="eval")
    assert episodes
    t, ep = episodes[0]
    assert rewards.max() >= 5  # unclipped
    assert terms[: t + 1, 0].sum() == 1  # only the game over ends the episode
    assert ep.ret == pytest.approx(rewards[: t + 1, 0].sum())


def test_fire_reset_starts_breakout():
    """With NOOP only, Breakout never launches the ball unless FIRE is pressed at reset."""
    lives = {}
    for fire in (True, False):
        cfg = EnvConfig(id="BreakoutNoFrameskip-v4", fire_reset=fire, noop_max=0)
        env = make_atari_env(cfg, "breakout", train=True)
        env.reset(seed=0)
        lost = False
        for _ in range(300):
            _, _, term, trunc, _ = env.step(0)
            if term:
                lost = True
                break
        lives[fire] = (lost, env.unwrapped.ale.lives())
        env.close()
    assert lives[True] == (True, 4)
    assert lives[False] == (False, 5)


def test_episodic_life_ends_training_episode_not_the_game():
    cfg = EnvConfig(id="BreakoutNoFrameskip-v4", noop_max=0)
    env = make_atari_env(cfg, "breakout", train=True)
    env.reset(seed=0)
    for _ in range(300):
        _, _, term, _, info = env.step(0)
        if term:
            break
    assert term and "episode" not in info  # a life ended, the game did not
    assert env.unwrapped.ale.lives() == 4
    env.reset()
    assert env.unwrapped.ale.lives() == 4  # the reset continued the same game
    eval_env = make_atari_env(cfg, "breakout", train=False)
    eval_env.reset(seed=0)
    lives, info = [], {}
    for _ in range(3000):  # NOOP only: every ball is lost
        _, _, term, trunc, info = eval_env.step(0)
        lives.append(eval_env.unwrapped.ale.lives())
        if term or trunc:
            break
    # A lost life does not end the evaluation episode, and FIRE is pressed after it, so
    # a policy that never fires still plays the game to its end instead of waiting.
    assert lives[0] == 5 and 4 in lives and term
    assert lives[-1] == 0 and "episode" in info
    env.close()
    eval_env.close()


def test_reward_clipping_only_in_training():
    cfg = EnvConfig(id="SpaceInvadersNoFrameskip-v4")
    seen = {}
    for train in (True, False):
        env = make_atari_env(cfg, "space_invaders", train=train)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        seen[train] = {env.step(int(rng.integers(6)))[1] for _ in range(400)}
        env.close()
    assert seen[True] <= {0.0, 1.0} and 1.0 in seen[True]
    assert max(seen[False]) >= 5


def test_crop_resize_single_frame_and_errors():
    cfg = load_config("kungfu-lstm-a2c").env
    envs = make_vector_env(cfg, 1, seed=0, mode="train")
    try:
        assert envs.single_observation_space.shape == (1, 42, 42)
        assert envs.reset(seed=0).shape == (1, 1, 42, 42)
    finally:
        envs.close()
    cfg.backend = "envpool"
    with pytest.raises(EnvError, match="env.crop"):
        make_vector_env(cfg, 1, seed=0, mode="train")
    with pytest.raises(EnvError, match="leaves nothing"):
        make_vector_env(EnvConfig(id="ALE/Pong-v5", crop=[200, 20, 0, 0]), 1)


def test_render_gives_rgb_frames():
    cfg = EnvConfig(id="PongNoFrameskip-v4", backend="envpool")
    envs = make_vector_env(cfg, 1, seed=0, mode="eval", render=True)
    try:
        envs.reset(seed=0)
        envs.step(np.zeros(1, dtype=np.int64))
        frame = envs.render_first()
        assert frame.shape == (210, 160, 3) and frame.dtype == np.uint8
    finally:
        envs.close()


def test_max_episode_steps_truncates_and_reports_the_episode():
    cfg = EnvConfig(id="PongNoFrameskip-v4", max_episode_steps=50)
    envs = make_vector_env(cfg, 1, seed=0, mode="eval")
    try:
        _, _, _, episodes = _play(envs, 60)
    finally:
        envs.close()
    assert episodes and episodes[0][1].length == 50


@pytest.mark.slow
def test_short_atari_training_run(tmp_path):
    from actorcritic.training import train

    cfg = load_config("pong-a2c-tuned", [
        "env.num_envs=4", "run.total_steps=2000", "run.eval_episodes=1",
        "env.max_episode_steps=100", "run.log_every=5", "run.device=cpu",
        "run.torch_threads=1"])
    summary = train(cfg, run_dir=tmp_path / "run", quiet=True)
    assert summary["status"] == "finished" and summary["env_steps"] >= 2000
    assert summary["eval"]["episodes"] == 1
    import csv

    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    losses = [float(r["losses/total"]) for r in rows if r.get("losses/total")]
    assert losses and all(math.isfinite(v) for v in losses)


def test_kungfu_attacks_on_a_press_not_while_the_button_is_held():
    """The reason a greedy KungFuMaster policy scores 0 (docs/BENCHMARKS.md): the same FIRE
    action on every step holds the button down and the player kicks once; pressed and
    released step by step, the same kick scores."""
    from actorcritic.agent import make_single_env

    env = make_single_env(load_config("kungfu-lstm-a2c"))
    meanings = env.unwrapped.get_action_meanings()
    kick, crouch = meanings.index("DOWNLEFTFIRE"), meanings.index("DOWNLEFT")

    def game(policy) -> float:
        env.reset(seed=1)
        total, step, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(policy(step))
            total, step, done = total + float(reward), step + 1, terminated or truncated
        return total

    try:
        assert game(lambda t: kick) == 0
        assert game(lambda t: kick if t % 2 == 0 else crouch) >= 1000
    finally:
        env.close()


ATARI_AGENTS = [a for a in zoo.agent_dirs()
                if is_atari(yaml.safe_load((a / "config.yaml").read_text())["env"]["id"])]


@pytest.mark.parametrize("agent_dir", ATARI_AGENTS, ids=[a.name for a in ATARI_AGENTS])
def test_each_atari_agents_preprocessing_is_the_same_on_envpool_and_gymnasium(agent_dir):
    """Every shipped Atari agent's own preprocessing (frame skip, crop, resize, grayscale,
    frame stack), frame by frame on EnvPool, where the agents trained, and on Gymnasium's
    ALE env, where `actorcritic eval` and the zoo guard play them: the same observations
    for 120 steps of the same random actions. What makes the two play one game is set as in
    MATCH (one no-op at reset, no FIRE at reset), with no sticky actions and no episodic
    life (the backends handle the reset step after a lost life differently). An agent that
    trained on the Gymnasium path (kungfu-lstm-a2c: its crop needs those wrappers) plays
    on the path it trained on."""
    env = yaml.safe_load((agent_dir / "config.yaml").read_text())["env"]
    if env["backend"] != "envpool":  # trained on the Gymnasium path it is evaluated on
        assert env["backend"] in ("sync", "async") and env["eval_backend"] in ("auto", "sync")
        return
    settings = {k: env[k] for k in ("id", "frame_skip", "frame_stack", "resize", "crop",
                                    "grayscale")}
    settings.update(noop_max=1, fire_reset=False, sticky_actions=0.0, episodic_life=False)
    space, ref, _ = _frames("sync", steps=120, **settings)  # SpaceInvaders starts still
    got_space, frames, _ = _frames("envpool", steps=120, **settings)
    assert got_space == space
    channels = 1 if env["grayscale"] else 3
    assert_same_frames(frames, ref, channels=channels, stack=env["frame_stack"],
                       zero_filled=False)
