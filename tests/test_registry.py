"""The registry decides which algorithm runs on which placement and backend.

Generated from the registry: every combination a config can ask for is either run by the
contract suite (tests/test_contract.py builds its placements from the same table) or
refused when the config loads, with one line that names what exists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_contract import PLACEMENTS, base_preset
from test_robustness import cli, one_error_line

from actorcritic import registry
from actorcritic.config import load_config
from actorcritic.errors import ConfigError

PACKAGE = Path(registry.__file__).resolve().parent
COMBINATIONS = registry.requestable()
SUPPORTED = [c for c in COMBINATIONS if registry.is_supported(*c)]
REFUSED = [c for c in COMBINATIONS if not registry.is_supported(*c)]
# cartpole-a2c normalizes advantages over the whole batch, which algo.processes refuses.
BASE = ["algo.normalize_advantage=false"]


def ids(combos):
    return ["-".join(c) for c in combos]


def test_every_requestable_combination_is_either_supported_or_refused():
    assert len(SUPPORTED) + len(REFUSED) == len(COMBINATIONS)
    assert len(COMBINATIONS) == len(registry.ALGORITHMS) * len(registry.BACKENDS) * 3
    # The table as the registry's docstring draws it.
    assert {(a, p, b) for a, p, b in SUPPORTED} == {
        ("a2c", "sync", "local"), ("a2c", "overlap", "local"), ("a2c", "processes", "local"),
        ("ppo", "sync", "local"), ("ppo", "overlap", "local"),
        ("a2c", "sync", "ray"), ("ppo", "sync", "ray"),
        ("a3c", "workers", "local"), ("impala", "actors", "local"),
        ("impala", "actors", "ray"), ("a3c_ps", "actors", "ray"),
        ("sac", "replay", "local"), ("td3", "replay", "local")}


@pytest.mark.parametrize("combo", SUPPORTED, ids=ids(SUPPORTED))
def test_a_supported_combination_loads_and_is_run_by_the_contract_suite(combo):
    algorithm, placement, backend = combo
    cfg = load_config(base_preset(algorithm), BASE + registry.overrides_for(*combo))
    assert registry.placement_of(cfg) == placement
    assert registry.check(cfg) is registry.ALGORITHMS[algorithm].placement(placement, backend)
    contract_id = "-".join([algorithm, placement] + ([backend] if backend != "local" else []))
    assert PLACEMENTS[contract_id][:2] == [f"algo.name={algorithm}", f"run.backend={backend}"]


@pytest.mark.parametrize("combo", REFUSED, ids=ids(REFUSED))
def test_an_unsupported_combination_is_refused_naming_what_exists(combo):
    algorithm, placement, backend = combo
    with pytest.raises(ConfigError) as err:
        load_config("cartpole-a2c", BASE + registry.overrides_for(*combo))
    line = str(err.value)
    assert "\n" not in line
    assert f"algo.name={algorithm} has no '{placement}' placement on {backend}" in line
    for p in registry.ALGORITHMS[algorithm].placements:
        assert f"{p.name} on {p.backend}" in line


def test_an_unsupported_placement_is_refused_by_the_cli_before_anything_is_written(
        tmp_path, capsys):
    """A2C on Ray used to pass validation and train locally without a word; now it has a
    Ray placement, and one it lacks there is refused before the run starts."""
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "run",
                  "--set", "run.backend=ray", "--set", "algo.overlap=true")
    assert rc == 2
    assert "algo.name=a2c has no 'overlap' placement on ray" in one_error_line(err)
    assert not (tmp_path / "run").exists()


def test_every_runner_the_registry_names_exists():
    for algo in registry.ALGORITHMS.values():
        for placement in algo.placements:
            module, function = placement.runner.split(":")
            path = PACKAGE.parent / (module.replace(".", "/") + ".py")
            tree = ast.parse(path.read_text())
            assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_nothing_but_the_registry_and_config_compares_the_backend():
    """No module outside registry.py and config.py picks code by comparing run.backend
    (the entry point used to send a2c and ppo to the local path before looking at it)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("registry.py", "config.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and _is_backend(node.left):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, offenders


def _is_backend(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "backend" \
        and isinstance(node.value, ast.Attribute) and node.value.attr == "run"
