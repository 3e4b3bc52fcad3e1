"""The checkpoint reward recovered from EnvPool's minimap (actorcritic/envs/football_checkpoints.py).

(a) The pure parts against plain reference computations written here (gfootball's pixel
mapping, the official wrapper's loop). (b) Agreement with the official engine's own
`CheckpointRewardWrapper` on the same trajectories: the official engine plays, and the class
sees only what EnvPool would give it (the minimap and `ball_owned_team`). (c) EnvPool's engine
with next-step autoreset.

Measured agreement (`python tests/test_football_checkpoints.py 100`: 100 episodes of each of
five academy scenarios under `scripted_action`, 500 episodes, 39,217 steps; the engine is not
bit-for-bit reproducible in every scenario, so a rerun gives figures close to these):

    scenario                          same reward   same episode   carrier
                                      per step      total          condition
    academy_empty_goal_close          99.6%         100%           100%
    academy_run_to_score_with_keeper  99.1%         98%            100%
    academy_3_vs_1_with_keeper        96.9%         92%            100%
    academy_pass_and_shoot_with_keeper 98.9%        91%            99.96%
    academy_counterattack_easy        96.8%         93%            100%
    pooled                            98.3%         94.8%          99.99%

Every disagreement is a checkpoint paid a step or two early or late, where the ball's pixel
straddles a threshold (54% of the steps on which either side pays agree exactly): every
other episode total is off by exactly one checkpoint (0.1), the running totals are never
more than 0.1 apart, and the sums over all 500 episodes are 331.1 (here) and 332.3 (official).
The estimated goal distance is within 0.0118 of the true one (bound: half a pixel's
diagonal, 0.0121).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys

import numpy as np
import pytest

from actorcritic.envs.football_checkpoints import (
    CheckpointReward,
    ball_and_carrier,
    checkpoint_thresholds,
    checkpoints_within,
    goal_distance,
    pitch_to_pixel,
    pixel_to_pitch,
)

HAS_GFOOTBALL = importlib.util.find_spec("gfootball") is not None
needs_gfootball = pytest.mark.skipif(
    not HAS_GFOOTBALL, reason="official gfootball engine not installed (make football)")
needs_envpool = pytest.mark.skipif(
    importlib.util.find_spec("envpool") is None, reason="envpool not installed")

H, W = 72, 96
RIGHT, SHOT = 5, 12


# ---------------------------------------------------------------- reference computations

def ref_pixel(x: float, y: float) -> tuple[int, int]:
    """gfootball's mark_points, for one point: (column, row)."""
    col = int((x + 1.0) / 2.0 * W)
    row = int((y + 1.0 / 2.25) / (2.0 / 2.25) * H)
    return max(0, min(W - 1, col)), max(0, min(H - 1, row))


def ref_centre(col: int, row: int) -> tuple[float, float]:
    return (col + 0.5) / W * 2.0 - 1.0, (row + 0.5) / H * (2.0 / 2.25) - 1.0 / 2.25


def ref_thresholds(n: int = 10) -> list[float]:
    return [0.99 - 0.8 if n == 1 else 0.99 - 0.8 / (n - 1) * k for k in range(n)]


def ref_episode(steps, n: int = 10, per: float = 0.1) -> list[float]:
    """The official wrapper's `reward()` loop over one episode; steps of
    (scoring, the left team's active player has the ball, ball x, ball y)."""
    collected, out = 0, []
    for scoring, carrier, x, y in steps:
        reward = 0.0
        if scoring == 1:
            out.append(per * (n - collected))
            collected = n
            continue
        if carrier:
            d = ((x - 1) ** 2 + y ** 2) ** 0.5
            while collected < n and d <= ref_thresholds(n)[collected]:
                reward += per
                collected += 1
        out.append(reward)
    return out


def frame(ball=None, active=None, left=(), right=()) -> np.ndarray:
    """A channel-last minimap [72, 96, 4] with points at pitch positions."""
    f = np.zeros((H, W, 4), np.uint8)
    for channel, points in ((0, left), (1, right), (2, [ball] if ball else []),
                            (3, [active] if active else [])):
        for x, y in points:
            col, row = ref_pixel(x, y)
            f[row, col, channel] = 255
    return f


# ---------------------------------------------------------------- (a) pure parts

def test_pixel_mapping_is_gfootballs():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.1, 1.1, 2000)
    y = rng.uniform(-0.5, 0.5, 2000)
    col, row = pitch_to_pixel(x, y)
    assert [(int(c), int(r)) for c, r in zip(col, row)] == [ref_pixel(a, b) for a, b in zip(x, y)]
    # Pixel centres map back into their own pixel, and a point is within half a pixel of its
    # pixel's centre.
    cols, rows = np.meshgrid(np.arange(W), np.arange(H))
    back = pitch_to_pixel(*pixel_to_pitch(cols, rows))
    assert (back[0] == cols).all() and (back[1] == rows).all()
    assert np.allclose(pixel_to_pitch(cols, rows),
                       np.vectorize(ref_centre)(cols, rows))
    inside = (np.abs(x) < 1) & (np.abs(y) < 1 / 2.25)
    cx, cy = pixel_to_pitch(col, row)
    assert (np.abs(cx - x)[inside] <= 1 / W + 1e-12).all()
    assert (np.abs(cy - y)[inside] <= 1 / 2.25 / H + 1e-12).all()


@needs_gfootball
def test_pixel_mapping_matches_the_engines_minimap_code():
    with contextlib.redirect_stderr(io.StringIO()):
        from gfootball.env import observation_preprocessing as op
    rng = np.random.default_rng(1)
    for x, y in zip(rng.uniform(-1.1, 1.1, 300), rng.uniform(-0.5, 0.5, 300)):
        f = np.zeros((H, W), np.uint8)
        op.mark_points(f, np.array([x, y]))
        col, row = pitch_to_pixel(x, y)
        assert f[row, col] == 255 and f.sum() == 255


def test_thresholds_and_counting_follow_the_official_loop():
    for n in (1, 2, 10):
        assert np.array_equal(checkpoint_thresholds(n), ref_thresholds(n))
    thresholds = checkpoint_thresholds()
    rng = np.random.default_rng(2)
    d = np.concatenate([rng.uniform(0, 1.2, 500), thresholds, thresholds + 1e-9])
    for dist in d:
        for collected in range(11):
            loop = collected
            while loop < 10 and dist <= thresholds[loop]:
                loop += 1
            assert max(collected, int(checkpoints_within(dist, thresholds))) == loop


def random_step(rng):
    """Scoring, a ball at a pixel centre, and who has it (step of an episode)."""
    bx, by = ref_centre(int(rng.integers(40, W)), int(rng.integers(0, H)))
    owner = int(rng.choice([-1, 0, 0, 0, 1]))
    near = rng.random() < 0.8
    off = (0.0, 0.0) if near else (-0.09, 0.0)
    active = (bx + off[0], by + off[1])
    scoring = 1.0 if rng.random() < 0.03 else (-1.0 if rng.random() < 0.01 else 0.0)
    done = scoring != 0 or rng.random() < 0.04
    return frame((bx, by), active), scoring, owner, done, (owner == 0 and near, bx, by)


def test_matches_the_official_loop_on_synthetic_vectorized_episodes():
    # Three envs in lockstep under next-step autoreset: the step after an env's `done` is a
    # reset step, which pays nothing; each episode must pay exactly what the official loop
    # pays for it (ball positions at pixel centres, so the positions are exact).
    rng = np.random.default_rng(3)
    n, steps = 3, 600
    cr = CheckpointReward(n)
    after_done = np.zeros(n, bool)
    got = [[[]] for _ in range(n)]       # per env, per episode, the rewards of live steps
    ref = [[[]] for _ in range(n)]       # per env, per episode, (scoring, carrier, x, y)
    reset_pay = []
    for _ in range(steps):
        frames, scoring, owner, done = [], np.zeros(n), np.zeros(n, int), np.zeros(n, bool)
        for i in range(n):
            f, s, o, d, truth = random_step(rng)
            if after_done[i]:  # the reset step: the new episode's first observation
                s, d = 0.0, False
            else:
                ref[i][-1].append((s, *truth))
            frames.append(f)
            scoring[i], owner[i], done[i] = s, o, d
        reward = cr.step(np.stack(frames), scoring, owner, done)
        for i in range(n):
            if after_done[i]:
                reset_pay.append(reward[i])
            else:
                got[i][-1].append(reward[i])
                if done[i]:
                    got[i].append([])
                    ref[i].append([])
        after_done = done
    assert reset_pay and not np.any(reset_pay)
    episodes = 0
    for i in range(n):
        for g, r in zip(got[i], ref[i]):
            assert np.allclose(g, ref_episode(r), atol=1e-12)
            episodes += 1
    assert episodes > 50 and sum(sum(e) for g in got for e in g) > 5


def test_goal_pays_what_is_left():
    near = (0.51, 0.0)  # d = 0.49: thresholds 0.99 .. 0.546 reached, 6 checkpoints
    cr = CheckpointReward(1)
    f = frame(near, near)[None]
    assert cr.step(f, 0, [0], [False])[0] == pytest.approx(0.6)
    assert cr.step(f, 0, [0], [False])[0] == 0  # each checkpoint once per episode
    assert cr.collected[0] == 6
    # The goal pays the other 4, whoever holds the ball in that frame.
    assert cr.step(frame((1.0, 0.0))[None], 1, [-1], [True])[0] == pytest.approx(0.4)
    cr.step(f, 0, [0], [False])  # the reset step
    assert cr.step(frame((-0.5, 0.0), (-0.5, 0.0))[None], 1, [0], [True])[0] == pytest.approx(1.0)
    # A goal conceded (-1) pays nothing.
    cr.reset()
    assert cr.step(frame((-0.99, 0.0))[None], -1, [1], [True])[0] == 0


def test_each_episode_starts_empty_and_reset_steps_pay_nothing():
    at_goal = frame((0.9, 0.0), (0.9, 0.0))[None]   # d = 0.1: all 10
    cr = CheckpointReward(1)
    assert cr.step(at_goal, 0, [0], [True])[0] == pytest.approx(1.0)
    assert cr.collected[0] == 0                       # the episode ended: forgotten
    assert cr.step(at_goal, 0, [0], [False])[0] == 0  # reset step
    assert cr.step(at_goal, 0, [0], [False])[0] == pytest.approx(1.0)
    # Tracked by the caller instead: `live` says which steps are reset steps.
    cr2 = CheckpointReward(1)
    assert cr2.step(at_goal, 0, [0], [True], live=[True])[0] == pytest.approx(1.0)
    assert cr2.step(at_goal, 0, [0], [False], live=[False])[0] == 0
    assert cr2.step(at_goal, 0, [0], [False], live=[True])[0] == pytest.approx(1.0)
    # A step that is not live starts a new episode even without a `done` before it.
    assert cr2.step(at_goal, 0, [0], [False], live=[False])[0] == 0
    assert cr2.step(at_goal, 0, [0], [False], live=[True])[0] == pytest.approx(1.0)
    # `reset()` (after envs.reset()) forgets everything; `reset(ids)` only those envs.
    cr3 = CheckpointReward(2)
    cr3.step(np.stack([at_goal[0]] * 2), 0, [0, 0], [False, True])
    cr3.step(np.stack([at_goal[0]] * 2), 0, [0, 0], [False, False])
    assert cr3.collected.tolist() == [10, 0]
    cr3.reset([0])
    assert cr3.collected.tolist() == [0, 0]
    assert cr3.step(np.stack([at_goal[0]] * 2), 0, [0, 0], [False, False]).tolist() == \
        pytest.approx([1.0, 1.0])


def test_only_the_left_teams_active_player_on_the_ball_collects():
    ball = (0.8, 0.05)
    cases = [
        (frame(ball, ball), 0, 1.0),                           # left owns, active on it
        (frame(ball, (0.8 + 2 / 48, 0.05)), 0, 1.0),           # active 2 pixels away
        (frame(ball, (0.8 + 3 / 48, 0.05)), 0, 0.0),           # 3 pixels away
        (frame(ball, None), 0, 0.0),                           # no active player marked
        (frame(ball, ball), 1, 0.0),                           # right team owns it
        (frame(ball, ball), -1, 0.0),                          # nobody does
        (frame(None, ball), 0, 0.0),                           # no ball pixel
    ]
    cr = CheckpointReward(len(cases))
    reward = cr.step(np.stack([c[0] for c in cases]), 0, [c[1] for c in cases],
                     np.zeros(len(cases), bool))
    d = goal_distance(*pixel_to_pitch(*pitch_to_pixel(*ball)))
    full = 0.1 * int(checkpoints_within(d, checkpoint_thresholds()))
    assert reward == pytest.approx([c[2] * full for c in cases])


def test_channel_first_and_last_agree_and_other_shapes_are_refused():
    rng = np.random.default_rng(4)
    frames = np.stack([random_step(rng)[0] for _ in range(5)])
    owner = np.zeros(5, int)
    a = CheckpointReward(5).step(frames, 0, owner, np.zeros(5, bool))
    b = CheckpointReward(5).step(frames.transpose(0, 3, 1, 2), 0, owner, np.zeros(5, bool))
    assert np.array_equal(a, b)
    x, y, _ = ball_and_carrier(frames, owner)
    assert np.isfinite(x).all() and np.isfinite(y).all()
    for bad in (frames[0], frames[..., :3], np.zeros((5, 8, 72, 96), np.uint8)):
        with pytest.raises(ValueError, match="expected minimaps"):
            CheckpointReward(5).step(bad, 0, owner, np.zeros(5, bool))


def test_state_round_trips_as_plain_arrays():
    at = frame((0.6, 0.0), (0.6, 0.0))
    cr = CheckpointReward(2)
    cr.step(np.stack([at, at]), 0, [0, 1], [False, True])
    state = cr.state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    other = CheckpointReward(2)
    other.load_state(state)
    nxt = np.stack([frame((0.9, 0.0), (0.9, 0.0))] * 2)
    assert np.array_equal(other.step(nxt, 0, [0, 0], [False, False]),
                          cr.step(nxt, 0, [0, 0], [False, False]))
    with pytest.raises(ValueError):
        CheckpointReward(3).load_state(state)


# ---------------------------------------------------------------- (b) the official engine

DIRECTIONS = {1: (-1, 0), 2: (-1, -1), 3: (0, -1), 4: (1, -1), 5: (1, 0), 6: (1, 1),
              7: (0, 1), 8: (-1, 1)}


def scripted_action(raw: dict, rng, eps: float) -> int:
    """Towards the goal with some noise, shooting near it; a random action with prob eps."""
    if rng.random() < eps:
        return int(rng.integers(19))
    bx, by = float(raw["ball"][0]), float(raw["ball"][1])
    if raw["ball_owned_team"] == 0 and np.hypot(bx - 1, by) < 0.3 and rng.random() < 0.3:
        return SHOT
    dx, dy = 1 - bx, -by + rng.normal(0, 0.2)
    return max(DIRECTIONS, key=lambda a: (DIRECTIONS[a][0] * dx + DIRECTIONS[a][1] * dy)
               / np.hypot(*DIRECTIONS[a]))


def official_run(scenario: str, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Play `episodes` on the official engine with the checkpoint wrapper on, feeding a
    `CheckpointReward` what EnvPool would give it; per step: both rewards, the episode,
    and the official / estimated carrier flag and goal distance."""
    from actorcritic.envs.football import GFootballEnv

    rng = np.random.default_rng(seed)
    env = GFootballEnv(scenario, representation="extracted", checkpoints=True)
    cr = CheckpointReward(1)
    rec: dict[str, list] = {k: [] for k in ("ours", "official", "episode", "carrier",
                                            "official_carrier", "d", "official_d", "inside")}
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed if ep == 0 else None)
            raw = env.env.unwrapped.observation()[0]
            # As under EnvPool's autoreset: the new episode's first frame is a reset step.
            assert cr.step(obs[None], 0.0, [raw["ball_owned_team"]], [False])[0] == 0
            eps, done = rng.uniform(0.1, 0.6), False
            while not done:
                obs, scoring, term, trunc, info = env.step(scripted_action(raw, rng, eps))
                raw = env.env.unwrapped.observation()[0]
                done = term or trunc
                team = [raw["ball_owned_team"]]
                rec["ours"].append(cr.step(obs[None], scoring, team, [done])[0])
                rec["official"].append(info["checkpoint_reward"])
                rec["episode"].append(ep)
                x, y, carrier = ball_and_carrier(obs[None], team)
                rec["carrier"].append(carrier[0])
                rec["official_carrier"].append(raw["ball_owned_team"] == 0
                                               and raw["ball_owned_player"] == raw["active"])
                rec["d"].append(goal_distance(x, y)[0])
                bx, by = raw["ball"][0], raw["ball"][1]
                rec["official_d"].append(goal_distance(bx, by))
                rec["inside"].append(abs(bx) < 1 and abs(by) < 1 / 2.25)
    finally:
        env.close()
    return {k: np.asarray(v) for k, v in rec.items()}


def agreement(r: dict[str, np.ndarray]) -> dict[str, float]:
    step_ok = np.isclose(r["ours"], r["official"], atol=1e-5)
    paid = (np.abs(r["ours"]) > 1e-6) | (np.abs(r["official"]) > 1e-6)
    n = int(r["episode"].max()) + 1
    ours = np.bincount(r["episode"], r["ours"], n)
    official = np.bincount(r["episode"], r["official"], n)
    running = np.zeros_like(r["ours"])
    for e in range(n):
        m = r["episode"] == e
        running[m] = np.cumsum(r["ours"][m] - r["official"][m])
    return {
        "steps": len(step_ok), "episodes": n,
        "step": step_ok.mean(), "paying_step": step_ok[paid].mean(),
        "episode": np.isclose(ours, official, atol=1e-5).mean(),
        "max_episode_diff": np.abs(ours - official).max(),
        "max_running_diff": np.abs(running).max(),
        "carrier": (r["carrier"] == r["official_carrier"]).mean(),
        "max_d_error": np.abs(r["d"] - r["official_d"])[r["inside"]].max(),
        "ours_total": ours.sum(), "official_total": official.sum(),
    }


@needs_gfootball
@pytest.mark.parametrize("scenario,episodes", [
    ("academy_empty_goal_close", 25), ("academy_run_to_score_with_keeper", 12),
    ("academy_3_vs_1_with_keeper", 20)])
def test_agrees_with_the_official_engine_on_the_same_trajectory(scenario, episodes):
    a = agreement(official_run(scenario, episodes, seed=0))
    print(scenario, {k: round(float(v), 4) for k, v in a.items()})
    # The pixel's centre is within ~0.012 of the ball: a checkpoint is collected at most a
    # step or two early or late, so the running totals never differ by more than one.
    assert a["max_d_error"] <= np.hypot(1 / W, 1 / 2.25 / H) + 1e-6
    assert a["max_running_diff"] <= 0.1 + 1e-5
    assert a["max_episode_diff"] <= 0.1 + 1e-5
    assert a["episode"] >= 0.75
    assert a["step"] >= 0.9
    assert a["carrier"] >= 0.99
    assert a["official_total"] > 1.0


# ---------------------------------------------------------------- (c) EnvPool's engine

@needs_envpool
def test_env_checkpoint_reward_on_envpools_engine():
    """`env.checkpoint_reward` on EnvPool's engine, through make_vector_env (one pool per
    scenario of a mix): the training reward of an episode is its goals plus its
    checkpoints (10 of them by a goal), reset steps pay nothing, the raw return stays the
    goal difference."""
    from actorcritic.config import EnvConfig
    from actorcritic.envs import make_vector_env

    n = 4
    cfg = EnvConfig(id="football/academy_empty_goal_close,academy_run_to_score",
                    backend="envpool", representation="extracted", checkpoint_reward=True)
    envs = make_vector_env(cfg, num_envs=n, seed=0)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    totals, reset_next, finished = np.zeros(n), np.zeros(n, bool), []
    try:
        for _ in range(400):
            actions = np.where(rng.random(n) < 0.15, SHOT, RIGHT)
            _, reward, term, trunc, episodes = envs.step(actions)
            assert not reward[reset_next].any()
            totals += reward
            for ep in episodes:
                finished.append((ep.ret, round(totals[ep.env_index] - ep.ret, 6)))
                totals[ep.env_index] = 0
            reset_next = term | trunc
    finally:
        envs.close()
    goals = [c for ret, c in finished if ret > 0]
    assert len(goals) >= 5 and all(c == 1.0 for c in goals)     # a goal completes the 10
    assert all(0 <= c <= 1.0 and abs(c * 10 - round(c * 10)) < 1e-6 for _, c in finished)
    assert any(0 < c < 1.0 for ret, c in finished if ret <= 0)  # zones without a goal


if __name__ == "__main__":
    # The agreement figures quoted in the module docstring:
    #   python tests/test_football_checkpoints.py [episodes per scenario] [scenario ...]
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    names = sys.argv[2:] or ["academy_empty_goal_close", "academy_run_to_score_with_keeper",
                             "academy_3_vs_1_with_keeper", "academy_pass_and_shoot_with_keeper",
                             "academy_counterattack_easy"]
    runs = []
    for name in names:
        runs.append(official_run(name, count, seed=0))
        print(name, {k: round(float(v), 4) for k, v in agreement(runs[-1]).items()}, flush=True)
    for i, run in enumerate(runs):  # number the episodes across runs
        run["episode"] = run["episode"] + i * count
    print("pooled", {k: round(float(v), 4) for k, v in agreement(
        {k: np.concatenate([run[k] for run in runs]) for k in runs[0]}).items()})
