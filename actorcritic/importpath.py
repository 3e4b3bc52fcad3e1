"""The user's own code named by import path `module:qualname` (an env factory, an encoder).

A run records what it used by path, so that another process can import it back: a
checkpoint names its encoder class, a config its env factory. An object with no such
path (a lambda, a function or class defined inside a function, anything in `__main__`) is
remembered here under its would-be path for the life of this process: it works where the
run's code runs in this process, and a later process needs it passed again.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# module:qualname; a qualname may pass through a function's locals (`f.<locals>.g`).
_PART = r"(?:[A-Za-z_]\w*|<\w+>)"
PATH = re.compile(rf"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:{_PART}(?:\.{_PART})*")

_remembered: dict[str, Any] = {}


def is_import_path(text: str) -> bool:
    """Whether `text` is spelled `module:qualname`."""
    return isinstance(text, str) and PATH.fullmatch(text) is not None


def path_of(obj: Any) -> str:
    """`module:qualname` of a function or class (its would-be path, importable or not);
    `module:<type>` for another callable (a functools.partial: `functools:<partial>`)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}:{qualname}"
    return f"{type(obj).__module__}:<{type(obj).__name__}>"


def import_object(path: str) -> Any:
    """The object `module:qualname` names, imported; ImportError (one line) if it is not
    there. `__main__` and `<locals>` are never importable by another process."""
    module, qualname = path.split(":", 1)
    if module == "__main__" or "<" in qualname:
        raise ImportError("it has no name another process can import (a lambda, a local "
                          "function or class, a partial, or defined in __main__)")
    try:
        obj = importlib.import_module(module)
    except Exception as exc:  # the user's module: report whatever it raised
        raise ImportError(f"module '{module}' could not be imported: "
                          f"{type(exc).__name__}: {exc}") from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"module '{module}' has no '{qualname}'") from None
    return obj


def importable(obj: Any) -> bool:
    """Whether importing `path_of(obj)` gives back this very object."""
    try:
        return import_object(path_of(obj)) is obj
    except ImportError:
        return False


def remember(obj: Any) -> str:
    """Remember `obj` under its path for this process; return the path."""
    path = path_of(obj)
    _remembered[path] = obj
    return path


def remember_as(path: str, obj: Any) -> None:
    """Remember `obj` under a path a run recorded (the same object passed again)."""
    _remembered[path] = obj


def remembered(path: str) -> Any | None:
    """The object remembered under `path` in this process, or None."""
    return _remembered.get(path)


def resolve(path: str) -> Any:
    """The object remembered under `path`, else the one importing it gives (ImportError)."""
    obj = _remembered.get(path)
    return obj if obj is not None else import_object(path)
