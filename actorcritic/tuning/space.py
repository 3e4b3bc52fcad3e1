"""Search spaces: YAML files mapping config keys to the distributions trials draw from.

```yaml
description: one line
trial_steps: 50000          # optional default budget per trial
params:
  algo.lr: {type: loguniform, low: 1.0e-4, high: 5.0e-3}
  algo.gae_lambda: {type: uniform, low: 0.9, high: 1.0}
  algo.num_steps: {type: int, low: 4, high: 32, step: 4}
  model.hidden_sizes: {type: categorical, choices: [[64, 64], [128, 128]]}
```

Every key and every value a trial can draw is checked against the config before anything
runs, so a typo is one error line, not a failed search.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from actorcritic.config import ALIASES, Config, apply_overrides, valid_keys
from actorcritic.errors import ConfigError

TYPES = {"loguniform": ("low", "high"), "uniform": ("low", "high"),
         "int": ("low", "high", "step", "log"), "categorical": ("choices",)}
# Keys the tuner sets itself, with the option that sets them.
RESERVED = {"run.total_steps": "--trial-steps", "run.seed": "--seed / --vary-seed"}


@dataclass
class Param:
    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: int = 1
    log: bool = False
    choices: list = field(default_factory=list)

    def candidates(self) -> list:
        """The values to validate against the config: the bounds, or every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def to_dict(self) -> dict:
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        out = {"type": self.type, "low": self.low, "high": self.high}
        if self.type == "int":
            out.update(step=self.step, log=self.log)
        return out


@dataclass
class SearchSpace:
    source: str  # the file it came from, for messages and tune.yaml
    params: dict[str, Param]
    trial_steps: int | None = None
    description: str = ""

    def to_dict(self) -> dict:
        return {k: p.to_dict() for k, p in self.params.items()}


def builtin_space_path(algo: str) -> Path:
    return Path(str(resources.files("actorcritic") / "presets" / "search" / f"{algo}.yaml"))


def load_space(path: str | Path) -> SearchSpace:
    """Read and check the form of a space file (not yet against a config)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space {path} does not exist; give a YAML file to --space")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"search space {path} is not valid YAML: "
                          f"{str(exc).splitlines()[0]}") from None
    return parse_space(str(path), data)


def parse_space(source: str, data: Any) -> SearchSpace:
    """A space from its mapping (a file's contents, or the copy kept in tune.yaml)."""
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict) \
            or not data["params"]:
        raise ConfigError(f"search space {source} needs a 'params' mapping of config keys to "
                          f"distributions")
    unknown = set(data) - {"description", "trial_steps", "params"}
    if unknown:
        raise ConfigError(f"search space {source}: unknown top-level key(s) "
                          f"{', '.join(sorted(map(str, unknown)))} (allowed: description, "
                          f"trial_steps, params)")
    steps = data.get("trial_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"search space {source}: trial_steps must be a positive integer, "
                          f"got {steps!r}")
    params = {}
    for key, spec in data["params"].items():
        param = _parse_param(source, str(key), spec)
        params[param.key] = param
    return SearchSpace(source, params, steps, str(data.get("description", "") or ""))


def _parse_param(source: str, key: str, spec: Any) -> Param:
    where = f"search space {source}: {key}"
    if not isinstance(spec, dict) or spec.get("type") not in TYPES:
        raise ConfigError(f"{where} must be a mapping with type: {' | '.join(TYPES)}; "
                          f"got {spec!r}")
    kind = spec["type"]
    extra = set(spec) - {"type", *TYPES[kind]}
    if extra:
        raise ConfigError(f"{where}: {', '.join(sorted(map(str, extra)))} not allowed for "
                          f"type {kind} (allowed: {', '.join(TYPES[kind])})")
    key = ALIASES.get(key, key)
    if key in RESERVED:
        raise ConfigError(f"{where}: the tuner sets {key} itself ({RESERVED[key]}); remove it "
                          f"from the space")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, got {choices!r}")
        return Param(key, kind, choices=choices)
    low, high = spec.get("low"), spec.get("high")
    number = (int,) if kind == "int" else (int, float)
    if any(isinstance(v, bool) or not isinstance(v, number) for v in (low, high)) \
            or low >= high:
        what = "integers" if kind == "int" else "numbers"
        raise ConfigError(f"{where}: low and high must be {what} with low < high, got "
                          f"low={low!r} high={high!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: a loguniform range must be > 0, got low={low!r}")
    if kind != "int":
        return Param(key, kind, float(low), float(high))
    step, log = spec.get("step", 1), spec.get("log", False)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1 or not isinstance(log, bool):
        raise ConfigError(f"{where}: step must be a positive integer and log true or false")
    if log and (low < 1 or step != 1):
        raise ConfigError(f"{where}: an int range with log: true needs low >= 1 and step 1")
    return Param(key, kind, low, high, step, log)


def check_space(space: SearchSpace, cfg: Config, fixed_keys: list[str]) -> None:
    """Every key must exist and every value a trial can draw must validate, before any run."""
    for key, param in space.params.items():
        where = f"search space {space.source}"
        if key in fixed_keys:
            raise ConfigError(f"{where}: {key} is searched and also fixed with --set; drop one "
                              f"(a --space file without it keeps it fixed)")
        current = _current_value(cfg, key, where)
        if param.type in ("uniform", "loguniform") and isinstance(current, int) \
                and not isinstance(current, bool):
            raise ConfigError(f"{where}: {key} is an integer key; use type: int")
        for value in param.candidates():
            try:
                apply_overrides(copy.deepcopy(cfg), [override(key, value)])
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None


def _current_value(cfg: Config, key: str, where: str) -> Any:
    if key not in valid_keys():  # the config's own message, with its did-you-mean
        try:
            apply_overrides(copy.deepcopy(cfg), [override(key, 0)])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Draw one value per key from an Optuna trial; lists come back as lists."""
    out = {}
    for key, p in space.params.items():
        if p.type == "categorical":
            labels = [_label(c) for c in p.choices]
            out[key] = _unlabel(trial.suggest_categorical(key, labels))
        elif p.type == "int":
            out[key] = trial.suggest_int(key, p.low, p.high, step=p.step, log=p.log)
        else:
            out[key] = trial.suggest_float(key, p.low, p.high, log=p.type == "loguniform")
    return out


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    """A stored trial's params (lists as their JSON text) as config values."""
    return {k: _unlabel(v) for k, v in params.items()}


def _label(choice: Any) -> Any:
    """Optuna stores scalars only: a list choice is stored as its JSON text."""
    return json.dumps(choice) if isinstance(choice, (list, dict)) else choice


def _unlabel(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def override(key: str, value: Any) -> str:
    """A `--set` string that reads back as exactly `value` (JSON is YAML)."""
    return f"{key}={json.dumps(value)}"
