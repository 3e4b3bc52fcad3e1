"""The tune directory: what it belongs to (tune.yaml), a lock against a second search, and
where trials, the study and the reports go.

TUNE_DIR/
  tune.yaml      preset, search space, budget, seed and fixed overrides of the search
  study.db       the Optuna study (SQLite): what makes an interrupted search resumable
  trials/NNNN/   one training run per trial; trials/NNNN.log its output
  trials.csv, trials.png, best.yaml   rewritten after every trial
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actorcritic.errors import ConfigError, RunDirError
from actorcritic.run.checkpoint import write_atomic

SETTINGS_FILE = "tune.yaml"


@dataclass
class TuneSettings:
    """What a tune dir's trials are: fixed for its life (jobs and --trials may change)."""

    preset: str  # a preset name, or the absolute path of a YAML file
    algo: str
    space_file: str
    space: dict  # key -> distribution, as searched
    trial_steps: int
    eval_every: int
    seed: int
    vary_seed: bool = False
    overrides: list = field(default_factory=list)  # fixed --set of every trial

    def to_yaml(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False)


def preset_identity(preset: str) -> str:
    """How tune.yaml names a preset: its name, or the absolute path of a YAML file."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return str(path.resolve())
    return preset


def default_tune_dir(preset: str) -> Path:
    name = Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset
    return Path("tunes") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_settings(tune_dir: Path) -> TuneSettings | None:
    """The settings of an existing tune dir; None for a new (missing or empty) one."""
    tune_dir = Path(tune_dir)
    if tune_dir.exists() and not tune_dir.is_dir():
        raise RunDirError(f"tune dir {tune_dir} exists and is not a directory")
    path = tune_dir / SETTINGS_FILE
    if not path.is_file():
        if tune_dir.is_dir() and any(tune_dir.iterdir()):
            raise RunDirError(f"tune dir {tune_dir} is not empty and has no {SETTINGS_FILE} "
                              f"(not a tune dir); choose another --tune-dir")
        return None
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return TuneSettings(**data)
    except (yaml.YAMLError, TypeError) as exc:
        raise RunDirError(f"{path} is damaged ({str(exc).splitlines()[0]}); choose another "
                          f"--tune-dir") from None


def check_same(tune_dir: Path, stored: TuneSettings, given: dict[str, Any]) -> None:
    """Options given again when resuming must match what the tune dir was made with."""
    if given["preset"] != stored.preset:
        raise ConfigError(f"tune dir {tune_dir} belongs to preset {stored.preset!r} (see its "
                          f"{SETTINGS_FILE}), not {given['preset']!r}; choose another "
                          f"--tune-dir")
    names = {"space": "--space", "trial_steps": "--trial-steps", "seed": "--seed",
             "vary_seed": "--vary-seed", "overrides": "--set"}
    for key, option in names.items():
        value = given.get(key)
        if value is not None and value != getattr(stored, key):
            raise ConfigError(f"tune dir {tune_dir} was made with {option} "
                              f"{_show(getattr(stored, key))}, this call gives "
                              f"{_show(value)}; leave {option} out to continue it, or "
                              f"choose another --tune-dir")


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value)) or "(none)"
    if isinstance(value, dict):
        return "a different search space (its keys: " + ", ".join(value) + ")"
    return repr(value)


def create(tune_dir: Path, settings: TuneSettings) -> None:
    try:
        (Path(tune_dir) / "trials").mkdir(parents=True, exist_ok=True)
        write_atomic(Path(tune_dir) / SETTINGS_FILE, settings.to_yaml().encode())
    except OSError as exc:
        raise RunDirError(f"tune dir {tune_dir} cannot be written: {exc.strerror}") from None


@contextlib.contextmanager
def locked(tune_dir: Path) -> Iterator[None]:
    """Hold TUNE_DIR/.lock for the search: two searches on one study would re-run each
    other's trials. The lock goes with the process, however it ends."""
    import fcntl

    path = Path(tune_dir) / ".lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            raise RunDirError(f"tune dir {tune_dir} is in use by another actorcritic tune "
                              f"(pid {pid}); wait for it or stop it first") from None
        fh.truncate(0)
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def storage_url(tune_dir: Path) -> str:
    return f"sqlite:///{(Path(tune_dir) / 'study.db').resolve()}"

