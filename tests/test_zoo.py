"""The zoo's regression guard: every shipped agent still plays as well as it did when it
was shipped, so a change to preprocessing, models, checkpoints or evaluation cannot
silently break a trained agent. Plus the script that ships agents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import actorcritic
from actorcritic import zoo
from actorcritic.config import load_config
from actorcritic.run.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
AGENTS = zoo.agent_dirs()
FILES = ["agent.safetensors", "config.yaml", "summary.json", "eval.json", "curve.png"]


def test_the_zoo_ships_agents():
    assert AGENTS, "zoo/ holds no agent"


@pytest.mark.parametrize("agent_dir", AGENTS, ids=[p.name for p in AGENTS])
def test_zoo_agent_is_complete(agent_dir):
    for name in FILES:
        assert (agent_dir / name).is_file(), f"{agent_dir.name} lacks {name}"
    assert (agent_dir / zoo.AGENT_FILE).stat().st_size < 8 * 1024 * 1024
    ckpt = load_checkpoint(agent_dir / zoo.AGENT_FILE)
    assert not ckpt.section("optim"), "zoo agents carry no optimizer state"
    summary = json.loads((agent_dir / "summary.json").read_text())
    for key in ("env_steps", "wall_seconds", "seed", "machine", "command", "date", "commit"):
        assert summary.get(key) not in (None, ""), f"{agent_dir.name}: summary lacks {key}"
    ev = json.loads((agent_dir / "eval.json").read_text())["evaluation"]
    assert ev["episodes"] >= 10 and ev["sticky_actions"] == 0.0
    config = yaml.safe_load((agent_dir / "config.yaml").read_text())
    assert config == ckpt.meta["config"]
    assert ev["greedy"] == config["run"]["eval_greedy"], "evaluated as the run evaluated"


def config_of(agent_dir: Path) -> dict:
    return yaml.safe_load((agent_dir / "config.yaml").read_text())


def needs_engine(agent_dir: Path) -> None:
    """Agents of the official football engine need it built (make test builds it)."""
    if config_of(agent_dir)["env"]["backend"] == "gfootball":
        pytest.importorskip("gfootball.env", reason="official football engine not built "
                            "(make football)")


@pytest.mark.parametrize("agent_dir", AGENTS, ids=[p.name for p in AGENTS])
def test_zoo_guard_would_catch_a_drop_of_a_fifth(agent_dir):
    """The guard's bounds live here, not only in each agent's eval.json: it fails below
    80% of the shipped score, and plays 10 games where one game's score varies a lot (3
    games of Breakout or SpaceInvaders cannot tell a 20% drop from luck)."""
    guard = json.loads((agent_dir / "eval.json").read_text())["guard"]
    assert guard["share"] >= 0.8, f"{agent_dir.name}: guard share {guard['share']}"
    assert guard["episodes"] >= 10 or guard["std_return"] <= 0.1 * abs(guard["mean_return"]), (
        f"{agent_dir.name}: a guard of {guard['episodes']} games with std "
        f"{guard['std_return']:.1f} on a mean of {guard['mean_return']:.1f} "
        f"(scripts/zoo_guard.py replays it on 10)")


@pytest.mark.parametrize("agent_dir", AGENTS, ids=[p.name for p in AGENTS])
def test_zoo_agent_still_scores(agent_dir):
    needs_engine(agent_dir)
    guard = json.loads((agent_dir / "eval.json").read_text())["guard"]
    result = actorcritic.load(agent_dir.name).evaluate(guard["episodes"], seed=guard["seed"],
                                                       deterministic=guard["greedy"],
                                                       sticky_actions=guard["sticky_actions"])
    floor = guard["mean_return"] - (1 - guard["share"]) * abs(guard["mean_return"])
    assert result["mean_return"] >= floor, (
        f"{agent_dir.name} scores {result['mean_return']:.2f} over {guard['episodes']} games "
        f"(seed {guard['seed']}); it scored {guard['mean_return']:.2f} when shipped")
    # An agent of several football scenarios holds each one's win rate, not just the mean.
    for name, shipped in guard.get("scenarios", {}).items():
        won = result["scenarios"][name].get("win_rate", 0.0)
        assert won >= guard["share"] * shipped.get("win_rate", 0.0), (
            f"{agent_dir.name} wins {won:.2f} of {name} over {guard['episodes']} games; it "
            f"won {shipped['win_rate']:.2f} when shipped")


def test_zoo_guard_plays_sticky_actions_only_on_atari(tmp_path):
    """scripts/zoo_guard.py --sticky-actions: one line and exit 2, the guard untouched, for
    a probability out of range or an agent that is not Atari (the Atari path is the
    breakout-a3c guard above, recorded with it)."""
    import shutil

    agent = tmp_path / "pendulum-sac"
    shutil.copytree(ROOT / "zoo" / "pendulum-sac", agent)
    before = (agent / "eval.json").read_text()
    for value, says in (("0.25", "--sticky-actions is an Atari setting; pendulum-sac plays "
                                 "Pendulum-v1"),
                        ("1.5", "--sticky-actions 1.5 is not a probability in [0, 1)")):
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / "zoo_guard.py"),
                              str(agent), "--sticky-actions", value],
                             capture_output=True, text=True)
        assert out.returncode == 2 and out.stderr.strip() == f"error: {says}", out.stderr
    assert (agent / "eval.json").read_text() == before


def test_eval_cli_takes_a_zoo_agent_by_directory(tmp_path):
    others = [a for a in AGENTS if not config_of(a)["env"]["id"].startswith("football/")]
    if not others:
        pytest.skip("no zoo agent outside the official football engine")
    agent = others[0]
    out = subprocess.run([sys.executable, "-m", "actorcritic.cli", "eval",
                          str(agent.relative_to(ROOT)), "--episodes", "1", "--json",
                          "--video", str(tmp_path / "v")], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["checkpoint"].endswith(zoo.AGENT_FILE)
    video = tmp_path / "v" / "episode_000.mp4"
    assert video.is_file() and video.stat().st_size > 1000


def test_zoo_add_ships_a_run_and_keeps_a_better_agent(tmp_path):
    run_dir = tmp_path / "cp"
    cfg = load_config("cartpole-a2c", ["run.total_steps=3000", "run.eval_episodes=0",
                                       "run.stop_eval_return=null"])
    actorcritic.train(cfg, run_dir, quiet=True)
    root = tmp_path / "zoo"
    root.mkdir()
    cmd = [sys.executable, str(ROOT / "scripts" / "zoo_add.py"), str(run_dir), "--name", "cp",
           "--command", "actorcritic train cartpole-a2c", "--zoo-root", str(root)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (root / "cp").iterdir()) == sorted(FILES)
    summary = json.loads((root / "cp" / "summary.json").read_text())
    returns = [float(line.split(",")[2]) for line in
               (run_dir / "episodes.csv").read_text().splitlines()[1:]]
    assert summary["mean_return_last_10"] == pytest.approx(sum(returns[-10:]) / 10)
    assert summary["checkpoint_mean_return_last_10"] is not None
    record = json.loads((root / "cp" / "eval.json").read_text())
    agent = actorcritic.load(root / "cp")
    assert agent.evaluate(10, seed=12345)["mean_return"] == record["evaluation"]["mean_return"]
    before = (root / "cp" / zoo.AGENT_FILE).read_bytes()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # same score
    assert again.returncode == 2 and "kept the zoo agent" in again.stderr
    assert (root / "cp" / zoo.AGENT_FILE).read_bytes() == before
    assert sorted(p.name for p in root.iterdir()) == ["cp"]  # no staging left behind


def test_pick_checkpoint_plays_every_checkpoint_and_counts_the_starting_weights(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import pick_checkpoint

    short = ["env.backend=sync", "env.num_envs=4", "run.eval_episodes=0", "run.log_every=5"]
    first = actorcritic.train("cartpole-a2c", tmp_path / "a", quiet=True,
                              overrides=short + ["run.total_steps=400"])["env_steps"]
    actorcritic.train("cartpole-a2c", tmp_path / "b", quiet=True, overrides=short + [
        "run.total_steps=600", "run.checkpoint_every=10", "run.keep_checkpoints=2"],
        init_from=tmp_path / "a")
    written = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    lines = pick_checkpoint.table(tmp_path / "b", episodes=2, seed=5, within=first + 300)
    rows = {line.split(" | ")[0][2:]: line for line in lines if ".safetensors |" in line}
    assert sorted(rows) == written and len(written) >= 3
    steps = [int(row.split(" | ")[1].replace(",", "")) for row in rows.values()]
    assert steps == sorted(steps) and steps[0] > first  # counted with the starting weights'
    assert all(row.endswith("| yes |" if step <= first + 300 else "| no |")
               for row, step in zip(rows.values(), steps))
    assert rows["final.safetensors"].endswith("| no |")
    assert all("n/a (not Atari)" in row for row in rows.values())
    own = sorted(step - first for step in steps)
    later = pick_checkpoint.run_checkpoints(tmp_path / "b", min_steps=own[1])
    assert len(later) == len(written) - 1 and later[-1].name == "final.safetensors"
    with pytest.raises(SystemExit, match="no checkpoint in .* from 10,000 env steps on"):
        pick_checkpoint.run_checkpoints(tmp_path / "b", min_steps=10_000)
    played = actorcritic.load(tmp_path / "b" / "checkpoints" / "final.safetensors").evaluate(
        2, seed=5)
    assert f"| {played['mean_return']:.1f} +- " in rows["final.safetensors"]


def test_zoo_add_replaces_a_better_scoring_agent_that_loses_its_game_to_sticky_actions():
    sys.path.insert(0, str(ROOT / "scripts"))
    from zoo_add import why_keep

    def record(plain, sticky=None):
        out = {"evaluation": {"mean_return": plain}}
        if sticky is not None:
            out["sticky_evaluation"] = {"mean_return": sticky}
        return out

    assert why_keep({}, record(5.0)) is None  # nothing shipped yet
    assert why_keep(record(19.9, 4.2), record(20.3, 5.0)) is None  # scores higher
    assert why_keep(record(19.9, 4.2), record(19.5, 16.0)) is None  # holds 82%, old 21%
    assert why_keep(record(19.9), record(19.5, 16.0)) is None  # old one not measured
    kept = why_keep(record(19.9, 4.2), record(19.5, 10.0))  # 51%: not robust either
    assert kept == "it scores 19.9, this run 19.5, and this run's sticky evaluation is " \
                   "under 75% of its plain one"
    assert why_keep(record(19.9, 16.0), record(19.5, 17.0)) == "it scores 19.9, this run 19.5"
    assert why_keep(record(500.0), record(400.0)) == "it scores 500, this run 400"


def test_results_page_is_current():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "zoo_results.py"),
                          "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_results_judge_training_bars_by_the_training_mean_not_the_best_evaluation():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import (
        mean_and_eval_at_least,
        training_mean_100,
        training_mean_at_least,
    )

    # best_score is the best in-training evaluation (3 greedy games): never the judge.
    summary = {"mean_return_100": 97.0, "checkpoint_mean_return_100": 100.8, "best_score": 400}
    assert training_mean_100(summary) == 100.8
    assert training_mean_100({"mean_return_100": 12.6, "checkpoint_mean_return_100": None}) == 12.6
    assert training_mean_100({"best_score": 400}) == float("-inf")
    assert training_mean_at_least(100)(summary, {}) is True
    assert training_mean_at_least(101)(summary, {}) is False
    both = mean_and_eval_at_least(600)
    assert both({"mean_return_100": 610.0}, {"mean_return": 640.0}) is True
    assert both({"mean_return_100": 384.0, "best_score": 900}, {"mean_return": 638.0}) is False
    assert both({"mean_return_100": 610.0}, {"mean_return": 590.0}) is False


def test_results_judge_within_a_budget_only_what_was_reached_within_it():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import eval_at_least, mean_and_eval_at_least, training_mean_100

    # 18.0 at the shipped checkpoint (9M steps); the run went on to 12M and ended at 18.5
    summary = {"mean_return_100": 18.5, "env_steps": 12_000_000,
               "checkpoint_mean_return_100": 18.0, "checkpoint_env_steps": 9_000_000}
    assert training_mean_100(summary) == 18.5
    assert training_mean_100(summary, within=10_000_000) == 18.0
    assert training_mean_100(summary, within=8_000_000) == float("-inf")
    assert eval_at_least(19, within=10_000_000)(summary, {"mean_return": 20.0}) is True
    assert eval_at_least(19, within=8_000_000)(summary, {"mean_return": 20.0}) is False
    late = {"mean_return_100": 650.0, "env_steps": 11_000_000,
            "checkpoint_mean_return_100": 650.0, "checkpoint_env_steps": 11_000_000}
    assert mean_and_eval_at_least(600)(late, {"mean_return": 700.0}) is True
    assert mean_and_eval_at_least(600, within=10_000_000)(late, {"mean_return": 700.0}) is False


def test_results_judge_mujoco_bars_by_the_last_10_training_episodes_at_1m():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import training_last_10_at

    # the last 10 at 1M (the end) and at the shipped checkpoint (900k); mean-100 is lower:
    # the bar reads the end
    summary = {"mean_return_100": 8_600.0, "mean_return_last_10": 9_050.0,
               "env_steps": 1_000_000, "checkpoint_mean_return_last_10": 8_900.0,
               "checkpoint_env_steps": 900_000}
    at_1m = training_last_10_at(9_000, 1_000_000)
    assert at_1m(summary, {}) is True
    assert training_last_10_at(9_100, 1_000_000)(summary, {}) is False
    assert at_1m({**summary, "env_steps": 950_000}, {}) is False  # stopped short of 1M
    assert at_1m({**summary, "env_steps": 2_000_000}, {}) is False  # its end is not at 1M
    assert at_1m({**summary, "env_steps": 1_000_007}, {}) is True  # 8 envs' last step
    assert at_1m({"mean_return_100": 9_500.0, "env_steps": 1_000_000}, {}) is False


def test_results_judge_the_ppo_mujoco_bars_by_the_training_mean_100_at_their_budget():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import training_mean_100_at

    # mean-100 at the end (999,424 = 488 rollouts of 2048) and higher at the checkpoint:
    # the bar reads the end
    summary = {"mean_return_100": 2_400.0, "env_steps": 999_424,
               "checkpoint_mean_return_100": 2_700.0, "checkpoint_env_steps": 800_000}
    at_budget = training_mean_100_at(2_383, 999_424)
    assert at_budget(summary, {}) is True
    assert training_mean_100_at(2_500, 999_424)(summary, {}) is False
    assert at_budget({**summary, "env_steps": 900_000}, {}) is False  # stopped short
    assert at_budget({"mean_return_last_10": 3_000.0, "env_steps": 999_424}, {}) is False


def test_results_count_the_starting_weights_steps_in_a_budget():
    """A run started --init-from an agent of 4.5M steps that shipped its checkpoint at
    5M of its own steps has used 9.5M of a 10M budget, not 5M."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import eval_at_least, steps_before, training_mean_100

    summary = {"mean_return_100": 18.5, "env_steps": 6_000_000,
               "checkpoint_mean_return_100": 18.0, "checkpoint_env_steps": 5_000_000,
               "init_from": {"checkpoint": "zoo/pong-a3c/agent.safetensors",
                             "env_steps": 4_500_000}}
    assert steps_before(summary) == 4_500_000 and steps_before({"env_steps": 5}) == 0
    assert training_mean_100(summary, within=10_000_000) == 18.0  # 9.5M; the end is 10.5M
    assert training_mean_100(summary, within=9_000_000) == float("-inf")
    assert eval_at_least(19, within=10_000_000)(summary, {"mean_return": 20.0}) is True
    assert eval_at_least(19, within=9_000_000)(summary, {"mean_return": 20.0}) is False


def test_results_name_every_run_of_a_chain_of_init_froms():
    """An agent trained from an agent trained from a third run: its note names both runs
    before it, nearest first, and counts their steps in the budget once."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import lineage_note

    first = {"checkpoint": "c", "env_steps": 2_120_080, "command": "train A", "date": "d1",
             "commit": "aaa1111", "mean_return_100": 100.8}
    second = {"checkpoint": "c", "env_steps": 4_134_240, "command": "train B", "date": "d2",
              "commit": "bbb2222", "mean_return_100": 165.6, "init_from": first}
    note = lineage_note(second)
    assert note.index("`train B`") < note.index("`train A`")
    assert "(4.13M env steps, training mean-100 165.6 at its end; the steps are counted" in note
    assert "That run started from the weights of `train A` on d1 at commit aaa1111 " \
           "(2.12M env steps, training mean-100 100.8 at its end)." in note
    assert note.count("counted in its budget") == 1 and lineage_note(None) == ""


def test_results_hold_every_atari_agent_to_the_published_figure():
    """Issue 33's table lists every shipped Atari agent (a new one cannot be left out) and
    judges each with the function the notebook rows use."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import PUBLISHED_A2C, published_table

    from actorcritic.envs import is_atari

    atari = {d.name for d in AGENTS if is_atari(config_of(d)["env"]["id"])}
    assert atari <= set(PUBLISHED_A2C), f"no published figure for {atari - set(PUBLISHED_A2C)}"
    table = "\n".join(published_table())
    for name in atari:
        line = next(row for row in table.splitlines() if row.startswith(f"| {name} |"))
        assert line.endswith(("| yes |", "| **no** |")), line


def test_results_judge_the_sticky_evaluation_against_the_plain_one():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import published_figure_held, sticky_share

    plain = {"mean_return": 2000.0}
    assert sticky_share({"evaluation": plain}) is None  # not measured
    assert sticky_share({"evaluation": plain, "sticky_evaluation": {"mean_return": 1500.0}}) \
        == 0.75
    summary = {"mean_return_100": 1600.0, "env_steps": 9_000_000}
    held = published_figure_held(1562.9)
    assert held(summary, {"evaluation": plain,
                          "sticky_evaluation": {"mean_return": 1500.0}}) is True
    assert held(summary, {"evaluation": plain,
                          "sticky_evaluation": {"mean_return": 1499.0}}) is False
    assert held(summary, {"evaluation": plain}) is False  # a bar needs its sticky figure
    assert held({"mean_return_100": 1500.0, "env_steps": 9_000_000},
                {"evaluation": plain, "sticky_evaluation": plain}) is False


def test_zoo_add_evaluates_plain_and_sticky_whatever_the_agent_trained_with(monkeypatch):
    """An agent trained with sticky actions (assault-a3c) is recorded without them in
    "evaluation" and with 0.25 in "sticky_evaluation"."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import zoo_add

    asked = []

    class FakeAgent:
        evaluates_greedy = True
        cfg = load_config("pong-a3c")

        def evaluate(self, episodes, seed, sticky_actions):
            asked.append(sticky_actions)
            return {"mean_return": 1.0}

    monkeypatch.setattr(zoo_add, "load", lambda path: FakeAgent())
    assert zoo_add.evaluate(Path("a"), 10, 1)["sticky_actions"] == 0.0
    assert zoo_add.evaluate(Path("a"), 10, 1, zoo_add.STICKY_ACTIONS)["sticky_actions"] == 0.25
    assert asked == [0.0, 0.25]
    assert zoo_add.evaluate(Path("a"), 10, 1)["play"] == \
        "full games, all lives, raw score (no reward clipping)"
    assert zoo_add.play_protocol("HalfCheetah-v5") == \
        "full episodes, raw return (no reward scaling)"


def test_zoo_sticky_adds_the_sticky_evaluation_of_the_recorded_games(tmp_path, monkeypatch):
    """scripts/zoo_sticky.py replays the recorded evaluation's games (count, seed) with
    sticky actions into eval.json, leaves the rest as it was, and refuses in one line an
    agent that is not an Atari one or already has its sticky evaluation."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import zoo_sticky

    agent = tmp_path / "pong"
    agent.mkdir()
    (agent / "config.yaml").write_text("env: {id: PongNoFrameskip-v4}\n")
    record = {"evaluation": {"episodes": 10, "seed": 12345, "mean_return": 20.0},
              "guard": {"episodes": 3, "seed": 777, "mean_return": 20.0}}
    (agent / "eval.json").write_text(json.dumps(record))
    asked = []

    def evaluate(agent_dir, episodes, seed, sticky_actions=0.0):
        asked.append((agent_dir, episodes, seed, sticky_actions))
        return {"episodes": episodes, "seed": seed, "sticky_actions": sticky_actions,
                "mean_return": 12.0, "std_return": 3.0}

    monkeypatch.setattr(zoo_sticky, "evaluate", evaluate)
    assert zoo_sticky.main([str(agent)]) == 0
    assert asked == [(agent, 10, 12345, 0.25)]
    written = json.loads((agent / "eval.json").read_text())
    assert {k: written[k] for k in record} == record
    assert written["sticky_evaluation"]["mean_return"] == 12.0
    assert {"date", "commit"} <= set(written["sticky_evaluation"])
    assert zoo_sticky.main([str(agent)]) == 2  # has one: --force replaces it
    assert zoo_sticky.main([str(agent), "--force"]) == 0 and len(asked) == 2
    other = tmp_path / "pendulum"
    other.mkdir()
    (other / "config.yaml").write_text("env: {id: Pendulum-v1}\n")
    (other / "eval.json").write_text(json.dumps(record))
    assert zoo_sticky.main([str(other)]) == 2
    assert json.loads((other / "eval.json").read_text()) == record


def test_results_page_has_a_table_per_scenario_for_a_mix_agent(tmp_path):
    """An agent of several football scenarios: its bar judges each scenario's evaluation
    win rate, and RESULTS gets a row per scenario with the figures of eval.json."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_results import ACADEMY5_BARS, scenario_table, scenario_win_rates_at_least

    agent = tmp_path / "mix"
    agent.mkdir()
    (agent / zoo.AGENT_FILE).write_bytes(b"")
    wins = dict(zip(ACADEMY5_BARS, (1.0, 0.95, 0.9, 0.6, 0.5)))
    scenarios = {s: {"episodes": 100, "win_rate": w, "mean_return": w} for s, w in wins.items()}
    ev = {"episodes": 500, "mean_return": 0.79, "scenarios": scenarios}
    summary = {"env_steps": 4_000_000, "checkpoint_env_steps": 3_500_000,
               "scenarios": {s: {"win_rate_100": 0.8} for s in wins}}
    (agent / "eval.json").write_text(json.dumps({"evaluation": ev}))
    (agent / "summary.json").write_text(json.dumps(summary))
    met = scenario_win_rates_at_least(ACADEMY5_BARS, 5_000_000)
    assert met(summary, ev)
    assert not met({**summary, "checkpoint_env_steps": 6_000_000}, ev)
    short = {**scenarios, "academy_run_to_score": {**scenarios["academy_run_to_score"],
                                                   "win_rate": 0.89}}
    assert not met(summary, {**ev, "scenarios": short})
    lines = scenario_table("mix", met, root=tmp_path)
    rows = [line for line in lines if line.startswith("| academy_")]
    assert len(rows) == 5
    assert rows[3] == "| academy_run_to_score_with_keeper | >= 0.5 | 0.60 | +0.60 | 0.80 |"
