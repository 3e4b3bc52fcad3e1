"""scripts/check_structure.py: the package passes it, and each rule fires on a package
that breaks it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_structure.py"
spec = importlib.util.spec_from_file_location("check_structure", SCRIPT)
check_structure = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_structure)


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "actorcritic"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_the_package_keeps_its_structure():
    assert check_structure.violations() == []


@pytest.mark.parametrize("files, expected", [
    ({"run/loop.py": "from actorcritic.algorithms.update import lr_at\n",
      "algorithms/update.py": "lr_at = 1\n"},
     "actorcritic/run/loop.py:1: run/ imports an algorithm (actorcritic.algorithms.update)"),
    ({"run/session.py": "def f():\n    import actorcritic.distributed.ray_backend\n",
      "distributed/ray_backend.py": ""},
     "actorcritic/run/session.py:2: run/ imports an algorithm "
     "(actorcritic.distributed.ray_backend)"),
    ({"a.py": "import actorcritic.b\n", "b.py": "import actorcritic.a\n"},
     "import cycle: actorcritic.a -> actorcritic.b"),
    ({"algorithms/x.py": "from actorcritic.training import train\n", "training.py": ""},
     "actorcritic/algorithms/x.py:1: imports actorcritic.training (the entry point)"),
    ({"a.py": "from actorcritic.b import _hidden\n", "b.py": "_hidden = 1\n"},
     "actorcritic/a.py:1: imports private name _hidden from actorcritic.b"),
    ({"a.py": "def f():\n" + "    x = 1\n" * 60},
     "actorcritic/a.py:1: function f is 61 lines (at most 60)"),
    ({"samplers/experience.py": "from typing import Any\n\n\nclass Collected:\n"
                                "    data: Any\n"},
     "actorcritic/samplers/experience.py:5: the sampler-learner seam is typed: no Any"),
    ({"run/loop.py": "import typing\n\n\ndef update(collected) -> dict[str, typing.Any]:\n"
                     "    return {}\n"},
     "actorcritic/run/loop.py:4: the sampler-learner seam is typed: no Any"),
    ({"algorithms/a3c.py": "def run(session):\n    session.device = 'cpu'\n"},
     "actorcritic/algorithms/a3c.py:2: assigns session.device (call a RunSession method "
     "instead)"),
    ({"samplers/a.py": "class S:\n    def stop(self):\n        self.session.updates += 1\n"},
     "actorcritic/samplers/a.py:3: assigns session.updates (call a RunSession method "
     "instead)"),
])
def test_each_rule_fires_on_a_package_that_breaks_it(tmp_path, files, expected):
    assert expected in check_structure.violations(package(tmp_path, files))
