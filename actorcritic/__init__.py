"""actorcritic: A2C, A3C, recurrent and distributed actor-critic agents for Gymnasium.

The public names below are imported on first use (PEP 562), not with the package: a
process that only steps environments (an env worker, a Ray env actor) or only parses the
command line (`actorcritic --help`, a config error) does not import torch, which costs
about 2 s of CPU and 200 MB per process.
"""

import importlib
import os

# OpenMP threads that spin while waiting make a 2-thread CNN forward ~10x slower when the
# cores are shared (env workers, other processes). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# public name -> the module that defines it
_PUBLIC = {"Agent": "actorcritic.agent", "load": "actorcritic.agent",
           "Config": "actorcritic.config", "list_presets": "actorcritic.config",
           "load_config": "actorcritic.config", "train": "actorcritic.training"}

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'actorcritic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
