"""actorcritic: A2C, A3C, recurrent and distributed actor-critic agents for Gymnasium."""

from actorcritic.config import Config, list_presets, load_config
from actorcritic.train import train

__all__ = ["Config", "list_presets", "load_config", "train"]
__version__ = "0.1.0"
