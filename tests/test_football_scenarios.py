"""Football over several scenarios: ids, the per-episode draw, both engines switching
scenarios for real, per-scenario statistics against plain counts, and a short run."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter

import numpy as np
import pytest

from actorcritic.config import EnvConfig, load_config
from actorcritic.envs import make_vector_env
from actorcritic.envs.football_scenarios import (
    CURRICULUM_FLOOR,
    SCENARIO_SETS,
    ScenarioDraw,
    mix_scenarios,
    scenarios_of,
)
from actorcritic.envs.vector import Episode
from actorcritic.errors import ConfigError, EnvError
from actorcritic.run.logger import ScenarioWindows

needs_gfootball = pytest.mark.skipif(
    importlib.util.find_spec("gfootball") is None,
    reason="official gfootball engine not installed (make football)")

MIX = ("academy_empty_goal_close", "academy_run_to_score", "academy_3_vs_1_with_keeper")
MIX_ID = "football/" + ",".join(MIX)


# ---------------------------------------------------------------- ids and config

def test_ids_name_one_scenario_a_list_or_the_academy_set():
    assert scenarios_of("gfootball/academy_corner-v1") == ("academy_corner",)
    assert scenarios_of(MIX_ID) == MIX
    academy = scenarios_of("football/academy")
    assert len(academy) == 11 and academy == SCENARIO_SETS["academy"]
    assert all(s.startswith("academy_") for s in academy)
    assert mix_scenarios(MIX_ID) == MIX
    assert mix_scenarios("football/academy_corner") == () == mix_scenarios("CartPole-v1")


def test_bad_scenario_lists_get_one_line_at_config_load():
    base = "football-empty-goal-a2c"
    with pytest.raises(ConfigError, match="did you mean academy_run_to_score"):
        load_config(base, ["env.id=football/academy_empty_goal,academy_run_to_scor"])
    with pytest.raises(ConfigError, match="names a scenario twice"):
        load_config(base, ["env.id=football/academy_corner,academy_corner"])
    with pytest.raises(ConfigError, match="2 weights for 3 scenarios"):
        load_config(base, [f"env.id={MIX_ID}", "env.scenario_weights=[1, 2]"])
    with pytest.raises(ConfigError, match="non-negative with a positive sum"):
        load_config(base, [f"env.id={MIX_ID}", "env.scenario_weights=[1, -1, 1]"])
    for key in ("env.scenario_weights=[1]", "env.scenario_curriculum=true"):
        with pytest.raises(ConfigError, match="several scenarios"):
            load_config(base, [key])  # one scenario: nothing to weigh
        with pytest.raises(ConfigError, match="several scenarios"):
            load_config("cartpole-a2c", [key])
    cfg = load_config(base, [f"env.id={MIX_ID}", "env.scenario_weights=[2, 1, 1]",
                             "env.scenario_curriculum=true"])
    assert cfg.env.scenario_weights == [2, 1, 1]


def test_pools_that_would_not_fit_in_memory_are_refused(monkeypatch):
    from actorcritic.envs import football

    monkeypatch.setattr(football, "available_memory", lambda: 2 * 2**30)
    with pytest.raises(EnvError, match=r"11 scenarios x 16 envs .* 176 engines, about 10.3 GiB"
                                       r", and this machine has 2.0 GiB available"):
        make_vector_env(EnvConfig(id="football/academy", backend="envpool",
                                  representation="extracted"), 16)


def test_unknown_scenario_from_the_env_factory_too():
    with pytest.raises(EnvError, match="unknown football scenario 'nope'"):
        make_vector_env(EnvConfig(id="football/academy_corner,nope", backend="envpool",
                                  representation="extracted"), 1)


# ---------------------------------------------------------------- the draw

def test_each_slots_sequence_is_reproducible_from_the_seed():
    def sequences(seed):
        draw = ScenarioDraw(MIX, [], False, num_slots=3, seed=seed)
        return [[draw.draw(slot) for _ in range(50)] for slot in range(3)]

    a, b = sequences(7), sequences(7)
    assert a == b
    assert a[0] != a[1] and a != sequences(8)
    # A slot's sequence does not depend on how the other slots' draws interleave.
    draw = ScenarioDraw(MIX, [], False, num_slots=3, seed=7)
    interleaved = [[], [], []]
    for _ in range(50):
        for slot in (2, 0, 1):
            interleaved[slot].append(draw.draw(slot))
    assert interleaved == a


def test_weights_are_honoured():
    draw = ScenarioDraw(MIX, [6, 3, 1], False, num_slots=1, seed=0)
    counts = Counter(draw.draw(0) for _ in range(20_000))
    for name, share in zip(MIX, (0.6, 0.3, 0.1)):
        # binomial standard deviation at 20k draws is at most 0.0035
        assert counts[name] / 20_000 == pytest.approx(share, abs=0.015)
    never = ScenarioDraw(MIX, [1, 0, 1], False, num_slots=1, seed=0)
    assert MIX[1] not in {never.draw(0) for _ in range(2000)}


def test_curriculum_shares_against_a_plain_computation():
    draw = ScenarioDraw(MIX, [2, 1, 1], True, num_slots=1, seed=0)
    assert np.allclose(draw.probabilities(), [0.5, 0.25, 0.25])  # nothing played yet
    for win in [1] * 100:
        draw.record(MIX[0], win)          # always won
    for win in [1, 0, 0, 0] * 10:
        draw.record(MIX[1], win)          # won a quarter
    for win in [0] * 150 + [1] * 50:
        draw.record(MIX[2], win)          # the window holds the last 100: half won
    unsolved = np.array([max(1 - 1.0, CURRICULUM_FLOOR), 0.75, 0.5])
    expected = np.array([2, 1, 1]) * unsolved
    assert np.allclose(draw.probabilities(), expected / expected.sum())
    # Without the curriculum the results change nothing.
    plain = ScenarioDraw(MIX, [2, 1, 1], False, num_slots=1, seed=0)
    plain.record(MIX[0], 1)
    assert np.allclose(plain.probabilities(), [0.5, 0.25, 0.25])


def test_draw_state_round_trips_through_json():
    draw = ScenarioDraw(MIX, [], True, num_slots=2, seed=3)
    for i in range(30):
        draw.record(MIX[i % 3], float(i % 2))
        draw.draw(i % 2)
    state = json.loads(json.dumps(draw.state()))
    again = ScenarioDraw(MIX, [], True, num_slots=2, seed=99)
    again.load_state(state)
    assert np.allclose(again.probabilities(), draw.probabilities())
    assert [again.draw(1) for _ in range(20)] == [draw.draw(1) for _ in range(20)]


# ---------------------------------------------------------------- statistics

def test_scenario_windows_against_a_plain_count():
    rng = np.random.default_rng(0)
    episodes = [Episode(0, float(d), 10, {"win": float(d > 0)}, MIX[int(rng.integers(3))])
                for d in rng.integers(-1, 3, 500)]
    windows = ScenarioWindows(MIX)
    for ep in episodes:
        windows.add(ep)
    charts, summary = windows.charts(), windows.summary()
    for name in MIX:
        mine = [e for e in episodes if e.scenario == name]
        last = mine[-100:]
        assert summary[name]["episodes"] == len(mine)
        assert charts[f"scenario/{name}/win_rate_100"] == pytest.approx(
            sum(e.ret > 0 for e in last) / len(last))
        assert charts[f"scenario/{name}/return_100"] == pytest.approx(
            np.mean([e.ret for e in last]))


def test_report_reads_per_scenario_figures_of_unfinished_runs(tmp_path):
    """episodes.csv alone (a run still going): each scenario's last 100 games."""
    from actorcritic.run.report import load_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"preset: p\nenv:\n  id: {MIX_ID}\n")
    rows = [(i * 10, MIX[i % 3], float(i % 5 == 0)) for i in range(400)]
    with open(run / "episodes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["env_steps", "wall_seconds", "return", "length", "worker", "win",
                    "scenario"])
        w.writerows([step, 0.1, win, 5, 0, win, name] for step, name, win in rows)
    got = load_run(run).summary["scenarios"]
    for name in MIX:
        mine = [win for _, n, win in rows if n == name]
        assert got[name]["episodes"] == len(mine)
        assert got[name]["win_rate_100"] == pytest.approx(np.mean(mine[-100:]))


# ---------------------------------------------------------------- both engines, for real

def first_observations(envs, steps: int, seed: int = 3):
    """Play random actions; return {scenario: [first observation of each of its episodes
    after the reset]}, the episodes, and whether every reset step paid nothing."""
    rng = np.random.default_rng(seed)
    obs = envs.reset(seed=seed)
    starts = {}
    current = envs.scenario_of_slots()
    for slot, name in enumerate(current):
        starts.setdefault(name, []).append(obs[slot])
    episodes, reset_next, quiet_resets = [], np.zeros(envs.num_envs, bool), True
    for _ in range(steps):
        obs, reward, term, trunc, eps = envs.step(rng.integers(0, 19, envs.num_envs))
        quiet_resets &= bool((reward[reset_next] == 0).all())
        for slot in np.flatnonzero(reset_next):
            starts.setdefault(envs.scenario_of_slots()[slot], []).append(obs[slot])
        episodes += eps
        reset_next = term | trunc
    return starts, episodes, quiet_resets


def reference_starts(backend: str, representation: str) -> dict[str, np.ndarray]:
    """Each scenario's first observation from an env that plays only it."""
    out = {}
    for name in MIX:
        env = make_vector_env(EnvConfig(id=f"football/{name}", backend=backend,
                                        representation=representation), num_envs=1, seed=0)
        try:
            out[name] = env.reset(seed=0)[0]
        finally:
            env.close()
    return out


def check_mix(backend: str, representation: str, steps: int) -> None:
    cfg = EnvConfig(id=MIX_ID, backend=backend, representation=representation)
    envs = make_vector_env(cfg, num_envs=3, seed=3)
    try:
        starts, episodes, quiet_resets = first_observations(envs, steps)
    finally:
        envs.close()
    reference = reference_starts(backend, representation)
    assert quiet_resets
    # Every scenario was played, every episode is labelled with one of the mix, and each
    # episode began where its scenario begins (academy scenarios start from fixed places).
    assert set(starts) == set(MIX) and {ep.scenario for ep in episodes} <= set(MIX)
    for name, observations in starts.items():
        for obs in observations:
            assert np.allclose(obs, reference[name], atol=1e-5), name
    # Each slot played the scenarios its own draw gives, in order.
    replay = ScenarioDraw(MIX, [], False, num_slots=3, seed=3)
    for slot in range(3):
        played = [ep.scenario for ep in episodes if ep.env_index == slot]
        assert played == [replay.draw(slot) for _ in played]


def test_envpool_engine_switches_pools_per_episode():
    check_mix("envpool", "extracted", steps=400)


@needs_gfootball
def test_official_engine_loads_each_episodes_scenario():
    check_mix("gfootball", "simple115v2", steps=400)


# ---------------------------------------------------------------- a run

@needs_gfootball
def test_run_over_three_scenarios_writes_per_scenario_figures_and_resumes(tmp_path):
    """Per-scenario figures in metrics.csv, episodes.csv, summary.json, the evaluation (N
    games each), report and plot; a resumed run continues the draw and the windows."""
    from actorcritic.cli import main
    from actorcritic.run.checkpoint import CheckpointDir, load_checkpoint
    from actorcritic.training import train

    run = tmp_path / "run"
    overrides = [f"env.id={MIX_ID}", "env.backend=sync", "env.num_envs=2", "algo.name=a2c",
                 "algo.num_steps=16", "run.eval_episodes=2",
                 "run.log_every=8", "env.scenario_curriculum=true"]
    first = train("football-empty-goal-a3c", run, quiet=True,
                  overrides=overrides + ["run.total_steps=1024"])
    ckpt = load_checkpoint(CheckpointDir(run).path("final"))
    assert set(ckpt.meta["scenario_draw"]["wins"]) == set(MIX)
    summary = train("football-empty-goal-a3c", quiet=True, resume=run,
                    overrides=overrides + ["run.total_steps=2048"])
    assert summary["env_steps"] >= 2048 > first["env_steps"]
    with open(run / "episodes.csv", newline="") as fh:
        games = list(csv.DictReader(fh))
    assert {g["scenario"] for g in games} == set(MIX)
    for name in MIX:
        mine = [float(g["win"]) for g in games if g["scenario"] == name]
        assert summary["scenarios"][name]["episodes"] == len(mine)
        assert summary["scenarios"][name]["win_rate_100"] == pytest.approx(
            np.mean(mine[-100:]))
        assert summary["eval"]["scenarios"][name]["episodes"] == 2
    assert summary["eval"]["episodes"] == 6
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(f"scenario/{name}/win_rate_100" in rows[0] for name in MIX)
    assert any(r[f"scenario/{MIX[0]}/win_rate_100"] for r in rows)
    out = tmp_path / "report.md"
    assert main(["report", str(run), "--out", str(out)]) == 0
    text = out.read_text()
    assert "Per scenario" in text and all(f"| {name} |" in text for name in MIX)
    assert main(["plot", str(run), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 10_000
    # One scenario's env for the agent, named; without a name, one line saying which.
    import actorcritic
    from actorcritic.errors import UserError

    agent = actorcritic.load(run)
    with pytest.raises(UserError, match="name one: make_env"):
        agent.make_env()
    env = agent.make_env(scenario=MIX[1])
    try:
        obs, _ = env.reset(seed=0)
        assert np.allclose(obs, reference_starts("gfootball", "simple115v2")[MIX[1]],
                           atol=1e-5)
        assert agent.act(obs)[0] in range(19)
    finally:
        env.close()
