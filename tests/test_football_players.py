"""Several football players under one policy (env.players): K rows per game on the real
official engine, one episode per game, the bad-input lines, and a real A2C run whose agent
evaluates, acts and exports per row."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from actorcritic.config import EnvConfig, load_config
from actorcritic.envs import make_vector_env
from actorcritic.errors import ConfigError, EnvError

needs_gfootball = pytest.mark.skipif(
    importlib.util.find_spec("gfootball") is None,
    reason="official gfootball engine not installed (make football)")

SCENARIO = "academy_3_vs_1_with_keeper"
PRESET = "football-3v1-3players-a2c"
K = 3
IDLE, RIGHT, SHOT = 0, 5, 12
ACTIVE = slice(97, 108)  # simple115v2: the one-hot of the left team's active player
BALL_X = 88              # simple115v2: the ball's x (the scenario puts it at 0.62)


def players_cfg(**kw) -> EnvConfig:
    return EnvConfig(**{"id": f"football/{SCENARIO}", "backend": "sync", "players": K, **kw})


# ---------------------------------------------------------------- the batch layout

@needs_gfootball
def test_rows_per_game_one_episode_per_game_rows_end_together():
    """2 games x 3 players = 6 rows; a game's rows see the same pitch from their own active
    player; env.max_episode_steps cuts both games at step 12 on all their rows at once; the
    next step resets them (reward 0, no end flag); one Episode per game at rows 0 and 3."""
    envs = make_vector_env(players_cfg(max_episode_steps=12), num_envs=2, seed=0)
    try:
        assert envs.num_envs == 2 * K
        assert envs.single_observation_space.shape == (115,)
        assert envs.single_action_space.n == 19
        obs = envs.reset(seed=0)
        steps = [envs.step(np.full(2 * K, IDLE)) for _ in range(14)]
    finally:
        envs.close()
    assert obs.shape == (2 * K, 115) and obs.dtype == np.float32
    for o in [obs] + [s[0] for s in steps]:
        games = o.reshape(2, K, 115)
        others = np.delete(games, np.r_[ACTIVE], axis=2)
        assert (others == others[:, :1]).all()  # only the active-player one-hot differs
        for game in games:  # each row its own active player
            assert len(set(game[:, ACTIVE].argmax(1))) == K
    ends = [(t, term | trunc) for t, (_, _, term, trunc, _) in enumerate(steps)
            if (term | trunc).any()]
    assert [t for t, _ in ends] == [11] and ends[0][1].all()  # step 12 ends all 6 rows
    obs12, reward12, term12, trunc12, episodes = steps[11]
    assert trunc12.all() and not term12.any()
    assert [(e.env_index, e.length, e.ret) for e in episodes] == [(0, 12, 0.0), (3, 12, 0.0)]
    assert all(e.extras["draw"] == 1.0 for e in episodes)
    reset_obs, reset_reward, reset_term, reset_trunc, reset_eps = steps[12]
    assert (reset_reward == 0).all() and not (reset_term | reset_trunc).any() and not reset_eps
    assert np.allclose(reset_obs[:, BALL_X], 0.62, atol=0.02)  # a new episode's kick-off


@needs_gfootball
def test_minimap_rows_differ_only_in_the_active_plane():
    envs = make_vector_env(players_cfg(representation="extracted"), num_envs=1, seed=0)
    try:
        obs = envs.reset(seed=0)
        obs, *_ = envs.step(np.full(K, IDLE))
    finally:
        envs.close()
    assert envs.single_observation_space.shape == (4, 72, 96)
    assert obs.shape == (K, 4, 72, 96) and obs.dtype == np.uint8
    assert (obs[:, :3] == obs[:1, :3]).all()  # left team, right team, ball: shared
    planes = obs[:, 3].reshape(K, -1)
    assert all(p.any() for p in planes) and len({p.tobytes() for p in planes}) == K


def scored_episode(envs) -> np.ndarray:
    """The rewards [T, K] of a scripted game that scores: every player runs right, then
    shoots (the ball carrier's shot counts); tries a few seeds and run lengths."""
    for seed in range(8):
        for run in (8, 10, 12):
            envs.reset(seed=seed)
            rewards = []
            for t in range(60):
                _, r, _, _, episodes = envs.step(np.full(K, RIGHT if t < run else SHOT))
                rewards.append(r)
                if episodes:
                    break
            if episodes and episodes[0].ret == 1.0:
                return np.array(rewards)
    raise AssertionError("no scripted goal")


@needs_gfootball
def test_row_rewards_team_scoring_plus_own_checkpoint():
    """Every row is paid the team's goal; with env.checkpoint_reward each row adds the
    checkpoint reward the engine pays its own player, which a goal completes to 1.0 per
    row: a scored episode pays each row 2.0 in all."""
    plain = make_vector_env(players_cfg(), num_envs=1, seed=0)
    shaped = make_vector_env(players_cfg(checkpoint_reward=True), num_envs=1, seed=0)
    try:
        r_plain, r_shaped = scored_episode(plain), scored_episode(shaped)
    finally:
        plain.close()
        shaped.close()
    assert (r_plain == r_plain[:, :1]).all() and np.allclose(r_plain.sum(0), 1.0)
    assert np.allclose(r_shaped.sum(0), 2.0, atol=1e-5)
    assert (r_shaped != r_shaped[:, :1]).any()  # before the goal: each player's own zones


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("overrides, message", [
    (["env.players=0"], "env.players must be >= 1, got 0"),
    (["env.id=CartPole-v1"], "env.players=3 is for football envs"),
    (["env.backend=envpool", "env.representation=extracted"],
     "EnvPool's football engine controls one player only (env.backend=envpool); set "
     "env.backend=gfootball"),
    (["env.representation=pixels"], "gives every player the same frame"),
    (["algo.name=a3c"], "use algo.name=a2c (sync, overlap, processes) or ppo"),
])
def test_config_refuses_what_cannot_run(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(PRESET, overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_env_refuses_envpool_and_a_single_player_env():
    with pytest.raises(EnvError, match="set env.backend=gfootball"):
        make_vector_env(EnvConfig(id=f"gfootball/{SCENARIO}-v1", backend="envpool",
                                  representation="extracted", players=K), 1)
    with pytest.raises(EnvError, match="env.players=2 is for football envs"):
        make_vector_env(EnvConfig(players=2), 1)


@needs_gfootball
def test_more_players_than_the_team_is_one_line_and_writes_nothing(tmp_path):
    with pytest.raises(EnvError, match=r"env.players=5 is more than the 4 left players an "
                                       rf"agent can control in {SCENARIO}"):
        make_vector_env(players_cfg(players=5), 1)
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "actorcritic.cli", "train", PRESET,
                             "--run-dir", str(run), "--set", "env.players=5"],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "env.players=5" in lines[0] and "the 4 left players" in lines[0]
    assert not run.exists()


# ---------------------------------------------------------------- a real run

TOTAL_STEPS = 768  # game steps: 2 games x 32 steps x 12 updates


@pytest.fixture(scope="module")
def players_run(tmp_path_factory):
    from actorcritic.training import train

    run_dir = tmp_path_factory.mktemp("players") / "run"
    summary = train(PRESET, run_dir, quiet=True,
                    overrides=["env.num_envs=2", f"run.total_steps={TOTAL_STEPS}",
                               "run.eval_episodes=3", "run.log_every=4"])
    return run_dir, summary


@needs_gfootball
def test_a2c_run_writes_one_episode_row_per_game(players_run):
    run_dir, summary = players_run
    assert summary["status"] == "finished"
    with open(run_dir / "episodes.csv", newline="") as fh:
        games = list(csv.DictReader(fh))
    assert games
    # One row per game: the games' lengths fit in the game steps played (K rows per game
    # counted as K episodes would add up to about K times as many).
    lengths = sum(int(g["length"]) for g in games)
    assert TOTAL_STEPS - 2 * 400 < lengths <= TOTAL_STEPS  # 400: the scenario's clock
    assert all(g["win"] in ("0", "1") for g in games)
    assert summary["eval"]["episodes"] == 3  # games, not 3 x 3 rows


@needs_gfootball
def test_evaluation_counts_games_and_act_gives_one_action_per_player(players_run):
    import actorcritic
    from actorcritic.run.evaluate import play_episodes

    agent = actorcritic.load(players_run[0])
    episodes = play_episodes(agent.model, agent.cfg.env, 5, greedy=True, seed=7, num_envs=2)
    assert len(episodes) == 5 and {e.env_index for e in episodes} <= {0, K}
    env = agent.make_env()
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (K, 115)
        actions, state = agent.act(obs)
        assert actions.shape == (K,) and state is None
        _, reward, _, _, info = env.step(actions)
        assert info["player_rewards"].shape == (K,)
        assert reward == pytest.approx(info["player_rewards"].mean())
    finally:
        env.close()


@needs_gfootball
def test_onnx_export_is_the_per_row_policy(players_run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from actorcritic.export import export_checkpoint

    result = export_checkpoint(players_run[0], tmp_path / "agent.onnx")
    assert result.inputs == ["obs float32 [N, 115]"]
    assert result.observations == 8 * 2 * K  # 8 steps of 2 games' rows, checked equal
    assert result.max_abs_diff["logits"] < 1e-5


@needs_gfootball
@pytest.mark.slow  # software OpenGL start-up: ~15 CPU-seconds
def test_video_of_a_several_player_game(tmp_path):
    import imageio.v3 as iio

    from actorcritic.models.actor_critic import ActorCritic
    from actorcritic.run.evaluate import record_video

    cfg = players_cfg(max_episode_steps=12)
    envs = make_vector_env(cfg, num_envs=1)
    model = ActorCritic(envs.single_observation_space, envs.single_action_space,
                        load_config(PRESET).model)
    envs.close()
    [(path, frames, ret)] = record_video(model, cfg, tmp_path, episodes=1)
    assert 2 <= frames <= 13 and ret in (-1.0, 0.0, 1.0)  # one game (<= 12 steps), its score
    assert iio.imread(path).shape == (frames, 360, 640, 3)
