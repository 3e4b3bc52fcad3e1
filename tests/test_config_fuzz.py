"""Fuzzing the config loader: whatever mapping, YAML text or `--set` string comes in, the
result is a validated Config or one ConfigError, never another exception."""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorcritic.config import (
    SECTIONS,
    Config,
    config_from_dict,
    load_config,
    parse_override,
    valid_keys,
)
from actorcritic.errors import ConfigError
from actorcritic.importpath import is_import_path

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

FIELDS = {s: [f.name for f in dataclasses.fields(cls)] for s, cls in SECTIONS.items()}

scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["cpu", "adam", "lstm", "auto", "sync", "1e-3", "[64]", "yes"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
section_bodies = st.one_of(
    st.none(), scalars, st.lists(scalars, max_size=3),
    st.sampled_from(list(FIELDS)).flatmap(lambda s: st.dictionaries(
        st.sampled_from(FIELDS[s]) | st.text(max_size=10) | st.integers(), values, max_size=5)))
top_keys = st.sampled_from(list(SECTIONS) + ["preset", "description"]) | st.text(max_size=8) \
    | st.integers()
mappings = st.dictionaries(top_keys, section_bodies, max_size=5)


def accepts_or_config_error(fn, *args) -> Config | None:
    try:
        cfg = fn(*args)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)  # one clear line
        return None
    assert isinstance(cfg, Config)
    return cfg


def assert_valid(cfg: Config) -> None:
    """An accepted config holds values of the declared kinds, finite numbers in range."""
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            value = getattr(getattr(cfg, section), f.name)
            if isinstance(value, float):
                assert math.isfinite(value), (section, f.name, value)
            if f.metadata.get("choices"):  # or the user's own code, named module:qualname
                assert value in f.metadata["choices"] or (
                    f.metadata.get("import_path") and is_import_path(value)), \
                    (section, f.name, value)
            lo = f.metadata.get("min")
            if lo is not None and value is not None:
                assert value >= lo, (section, f.name, value)
    # and it survives the round trip through config.yaml (what --resume reads)
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again.to_dict() == cfg.to_dict()


@FUZZ
@given(mappings)
def test_random_nested_mappings(data):
    cfg = accepts_or_config_error(config_from_dict, data)
    if cfg is not None:
        assert_valid(cfg)


override_keys = st.sampled_from(valid_keys() + ["algo.t_max"]) | st.text(max_size=15) \
    | st.builds(lambda s, k: f"{s}.{k}", st.sampled_from(list(SECTIONS)), st.text(max_size=8))
override_values = st.text(max_size=20) | st.sampled_from([
    "", "1", "-1", "0", "1e-3", "nan", ".inf", "-.inf", "true", "null", "[1, 2]", "[.nan]",
    "[1e400]", "{a: 1}", "[", "{", "'x", "1e400", "0x10", "~", "[64, 0]", "!!python/none"])


@FUZZ
@given(st.lists(st.builds(lambda k, v: f"{k}={v}", override_keys, override_values)
                | st.text(max_size=20), max_size=3))
def test_random_override_strings(overrides):
    cfg = accepts_or_config_error(load_config, "cartpole-a2c", overrides)
    if cfg is not None:
        assert_valid(cfg)


@FUZZ
@given(st.text(max_size=200) | mappings.map(lambda d: yaml.safe_dump(d, allow_unicode=True)))
def test_random_yaml_preset_files(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8")
        cfg = accepts_or_config_error(load_config, str(path))
    if cfg is not None:
        assert_valid(cfg)


def test_the_bugs_the_fuzzer_found_stay_fixed():
    """Non-finite list entries used to crash check_consistency with ValueError/OverflowError;
    they are refused with one ConfigError naming the key."""
    for override in ("model.hidden_sizes=[.nan]", "model.hidden_sizes=[.inf]",
                     "env.resize=[.nan, 84]", "env.crop=[1, 2, .inf, 4]"):
        key = override.split("=")[0]
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)} must be a list of finite "
                                              rf"numbers"):
            load_config("cartpole-a2c", [override])
    assert parse_override("algo.lr=1e-3") == ("algo.lr", 1e-3)


FLOAT_KEYS = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)
              if float in (typing.get_type_hints(cls)[f.name],
                           *typing.get_args(typing.get_type_hints(cls)[f.name]))]


def test_every_float_key_is_found():
    assert len(FLOAT_KEYS) >= 20 and {"algo.lr", "algo.gamma", "run.stop_mean_return",
                                      "env.sticky_actions"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("raw", ["nan", ".nan", ".inf", "-.inf", "1e400", "-1e400"])
def test_non_finite_floats_are_refused_for_every_float_key(raw):
    """NaN and +-inf (YAML's spellings, and a literal that overflows) for any float key: one
    ConfigError naming the key, from `--set` and from a preset mapping alike."""
    value = parse_override(f"algo.lr={raw}")[1]
    assert isinstance(value, float) and not math.isfinite(value)
    for key in FLOAT_KEYS:
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)} must be a finite number"):
            load_config("cartpole-a2c", [f"{key}={raw}"])
        section, name = key.split(".")
        with pytest.raises(ConfigError, match=rf"^{re.escape(key)} must be a finite number"):
            config_from_dict({section: {name: value}})
