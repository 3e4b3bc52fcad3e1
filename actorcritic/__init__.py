"""actorcritic: A2C, A3C, recurrent and distributed actor-critic agents for Gymnasium."""

import os

# OpenMP threads that spin while waiting make a 2-thread CNN forward ~10x slower when the
# cores are shared (env workers, other processes). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from actorcritic.agent import Agent, load  # noqa: E402
from actorcritic.config import Config, list_presets, load_config  # noqa: E402
from actorcritic.train import train  # noqa: E402

__all__ = ["Agent", "Config", "list_presets", "load", "load_config", "train"]
__version__ = "0.1.0"
