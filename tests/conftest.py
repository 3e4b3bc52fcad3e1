"""Shared test helpers: small registered envs, a run-dir factory, the machine's CPU facts in
the report header, and the xdist groups of `make test`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

warnings.filterwarnings("ignore", message=".*precision lowered.*")


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, a constant observation, never terminates: only a time limit
    ends episodes. The true value of every state is 1 / (1 - gamma)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(2, np.float32), {}

    def step(self, action):
        return np.ones(2, np.float32), 1.0, False, False, {}


if "ConstantReward-v0" not in gym.registry:
    gym.register("ConstantReward-v0", entry_point=ConstantRewardEnv, max_episode_steps=20)


def pytest_report_header(config) -> str:
    """CPU facts that explain a slow or stuck run: the cores visible, the cores this process
    may use, and the cgroup's CPU quota (a container can see more cores than it is given)."""
    quota = Path("/sys/fs/cgroup/cpu.max")
    limit = quota.read_text().strip() if quota.exists() else "n/a"
    return (f"cpus: os.cpu_count={os.cpu_count()}, affinity={len(os.sched_getaffinity(0))}, "
            f"cgroup cpu.max={limit}, load average={os.getloadavg()[0]:.1f}")


def pytest_itemcollected(item):
    """`make test` runs the suite on two workers (pytest-xdist, `--dist loadgroup`). A test
    that uses a module-scoped fixture (a run trained once for the module's tests) joins its
    module's group, so that the fixture is built on one worker, not on each."""
    fixtures = getattr(item, "_fixtureinfo", None)
    if fixtures is None:
        return
    if any(d.scope == "module" for defs in fixtures.name2fixturedefs.values() for d in defs):
        item.add_marker(pytest.mark.xdist_group(item.module.__name__))


# Tests that take minutes each (the zoo guards play 10 full Atari games: Breakout's take
# about 3 minutes). Collected last (tests/test_zoo.py), they started in the suite's last
# minutes and set its end; run first, they overlap with everything else.
LONGEST_FIRST = ("test_zoo_agent_still_scores",)


def pytest_collection_modifyitems(config, items):
    """Start the longest tests first: on two workers the suite ends when its last long test
    does, so a long test scheduled last adds its whole length to the wall time."""
    items.sort(key=lambda item: item.originalname not in LONGEST_FIRST)


def pytest_xdist_node_collection_finished(node, ids):
    """On the xdist controller: the suite's groups arrive as ids tagged `@group`. A pytest
    that xdist cannot tag (pyproject.toml says which) stops the run here rather than
    scattering the groups silently."""
    if node.config.getoption("dist") == "loadgroup" and not any("@" in i for i in ids):
        pytest.exit(f"pytest-xdist formed no --dist loadgroup group under pytest "
                    f"{pytest.__version__} (see the pin in pyproject.toml)", returncode=4)


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"
