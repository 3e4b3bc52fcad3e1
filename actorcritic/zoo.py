"""The zoo: trained agents that ship in the repository, one directory each.

    zoo/NAME/agent.safetensors   model tensors only (a checkpoint with no optimizer state)
    zoo/NAME/config.yaml         the run's resolved config
    zoo/NAME/summary.json        env steps, wall time, seed, machine, command, date, commit
    zoo/NAME/eval.json           the recorded evaluation (settings and figures) and the
                                 regression guard's own short evaluation
    zoo/NAME/curve.png           the learning curve

`actorcritic eval zoo/NAME` and `actorcritic.load("NAME")` find an agent by its directory
or by its name. `scripts/zoo_add.py` puts a run's agent here.
"""

from __future__ import annotations

import json
from pathlib import Path

AGENT_FILE = "agent.safetensors"
ROOT = Path(__file__).resolve().parent.parent / "zoo"


def agent_dirs(root: Path = ROOT) -> list[Path]:
    """Every zoo agent directory, sorted by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / AGENT_FILE).is_file())


def names(root: Path = ROOT) -> list[str]:
    return [p.name for p in agent_dirs(root)]


def find(name: str, root: Path = ROOT) -> Path | None:
    """The agent file of zoo agent `name` (or `zoo/name`), or None."""
    candidate = root / Path(name).name
    path = candidate / AGENT_FILE
    return path if path.is_file() else None


def read_json(agent_dir: Path, name: str) -> dict:
    path = Path(agent_dir) / name
    return json.loads(path.read_text()) if path.is_file() else {}
