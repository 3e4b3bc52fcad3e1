"""Which football scenario each episode plays: env ids that name several scenarios, and the
draw of one scenario per episode and env slot.

Ids (`env.id`):

    football/academy_empty_goal_close            one scenario (also gfootball/<name>-v1)
    football/academy_empty_goal,academy_corner   several, comma-separated
    football/academy                             the set of all eleven academy scenarios

With several scenarios, every env slot draws the scenario of its next episode when the
previous one ends (`ScenarioDraw`): uniformly, or in proportion to `env.scenario_weights`,
and with `env.scenario_curriculum` the share of each scenario is scaled by how far the
agent is from winning it: weight x max(1 - win rate of its last 100 episodes, 0.1), so a
scenario the agent always wins keeps a tenth of its share, and one it never wins keeps all
of it. Each slot draws from its own generator seeded with (seed, slot), so a slot's
sequence of scenarios is reproducible from the seed (with the curriculum, given the same
results).

This module only imports NumPy: the config checks ids with it.
"""

from __future__ import annotations

import difflib
from collections import deque

import numpy as np

from actorcritic.errors import EnvError

# The scenarios both engines ship (gfootball 2.10 `gfootball/scenarios`, EnvPool 1.2).
SCENARIOS = (
    "11_vs_11_competition", "11_vs_11_easy_stochastic", "11_vs_11_hard_stochastic",
    "11_vs_11_kaggle", "11_vs_11_stochastic", "1_vs_1_easy", "5_vs_5",
    "academy_3_vs_1_with_keeper", "academy_corner", "academy_counterattack_easy",
    "academy_counterattack_hard", "academy_empty_goal", "academy_empty_goal_close",
    "academy_pass_and_shoot_with_keeper", "academy_run_pass_and_shoot_with_keeper",
    "academy_run_to_score", "academy_run_to_score_with_keeper",
    "academy_single_goal_versus_lazy",
)
# Named sets of scenarios, usable as `football/<set>`.
SCENARIO_SETS = {"academy": tuple(s for s in SCENARIOS if s.startswith("academy_"))}
# A won scenario keeps this fraction of its weight under the curriculum.
CURRICULUM_FLOOR = 0.1
CURRICULUM_WINDOW = 100


def is_football(env_id: str) -> bool:
    return env_id.startswith(("gfootball/", "football/"))


def mix_scenarios(env_id: str) -> tuple[str, ...]:
    """The scenarios of an id that names several; () for any other id (of any env)."""
    if not is_football(env_id):
        return ()
    names = scenarios_of(env_id)
    return names if len(names) > 1 else ()


def scenarios_of(env_id: str) -> tuple[str, ...]:
    """The scenarios an env id names, in the order given (see the module docstring)."""
    if env_id.startswith("gfootball/"):
        names = [env_id[len("gfootball/"):].removesuffix("-v1")]
    elif env_id.startswith("football/"):
        body = env_id[len("football/"):]
        names = list(SCENARIO_SETS.get(body, body.split(",")))
    else:
        raise EnvError(f"'{env_id}' is not a football id (gfootball/<scenario>-v1, "
                            f"football/<scenario>[,<scenario>...] or football/academy)")
    for name in names:
        if name not in SCENARIOS:
            close = difflib.get_close_matches(name, SCENARIOS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise EnvError(f"unknown football scenario '{name}' in env id '{env_id}'"
                                f"{hint} (known: {', '.join(SCENARIOS)}; sets: "
                                f"{', '.join(SCENARIO_SETS)})")
    if len(set(names)) != len(names):
        raise EnvError(f"env id '{env_id}' names a scenario twice; use "
                            f"env.scenario_weights to give one a larger share")
    return tuple(names)


def scenario_of(env_id: str) -> str:
    """The one scenario of a single-scenario id."""
    names = scenarios_of(env_id)
    if len(names) > 1:
        raise EnvError(f"env id '{env_id}' names {len(names)} scenarios where one is "
                            f"needed")
    return names[0]


def single_scenario_env(env_cfg, scenario: str):
    """A copy of an EnvConfig (of a run over several scenarios) that plays `scenario` only."""
    import dataclasses

    return dataclasses.replace(env_cfg, id=f"football/{scenario}", scenario_weights=[],
                               scenario_curriculum=False)


def check_scenario_weights(weights: list, scenarios: tuple[str, ...]) -> np.ndarray:
    """`env.scenario_weights` as probabilities (uniform when empty)."""
    if not weights:
        return np.full(len(scenarios), 1.0 / len(scenarios))
    if len(weights) != len(scenarios):
        raise EnvError(f"env.scenario_weights has {len(weights)} weights for "
                            f"{len(scenarios)} scenarios ({', '.join(scenarios)})")
    w = np.asarray(weights, np.float64)
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise EnvError(f"env.scenario_weights must be non-negative with a positive sum, "
                            f"got {list(weights)}")
    return w / w.sum()


class ScenarioDraw:
    """The scenario of every env slot's next episode, and (for the curriculum) the recent
    wins of each scenario. Lives where the episodes end: in the vector env."""

    def __init__(self, scenarios: tuple[str, ...], weights: list, curriculum: bool,
                 num_slots: int, seed: int):
        self.scenarios = scenarios
        self.base = check_scenario_weights(weights, scenarios)
        self.curriculum = curriculum
        self.wins = {s: deque(maxlen=CURRICULUM_WINDOW) for s in scenarios}
        self.generators = [np.random.default_rng([seed, slot]) for slot in range(num_slots)]

    def probabilities(self) -> np.ndarray:
        if not self.curriculum:
            return self.base
        unsolved = np.array([1.0 - (float(np.mean(self.wins[s])) if self.wins[s] else 0.0)
                             for s in self.scenarios])
        p = self.base * np.maximum(unsolved, CURRICULUM_FLOOR)
        return p / p.sum()

    def draw(self, slot: int) -> str:
        if len(self.scenarios) == 1:
            return self.scenarios[0]
        index = self.generators[slot].choice(len(self.scenarios), p=self.probabilities())
        return self.scenarios[int(index)]

    def record(self, scenario: str, win: float) -> None:
        """A finished episode's result (1 win, 0 draw or loss)."""
        self.wins[scenario].append(float(win))

    def state(self) -> dict:
        """Plain JSON: generators and curriculum windows (what a resumed run continues)."""
        return {"generators": [g.bit_generator.state for g in self.generators],
                "wins": {s: list(w) for s, w in self.wins.items()}}

    def load_state(self, state: dict) -> None:
        for g, s in zip(self.generators, state["generators"]):
            g.bit_generator.state = s
        for s, w in state["wins"].items():
            if s in self.wins:
                self.wins[s].extend(w)
