"""Regenerate the preset and config-key reference tables in README.md from the code.

Run `python scripts/update_readme.py`; tests/test_docs.py fails when the README is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from actorcritic.config import list_presets, reference_table

README = Path(__file__).resolve().parent.parent / "README.md"


def presets_table() -> str:
    rows = ["| preset | what it trains |", "|---|---|"]
    rows += [f"| `{name}` | {desc} |" for name, desc in list_presets().items()]
    return "\n".join(rows)


def render(text: str) -> str:
    for marker, table in (("PRESETS", presets_table()), ("CONFIG", reference_table())):
        pattern = re.compile(rf"(<!-- {marker}:BEGIN -->\n).*?(<!-- {marker}:END -->)", re.S)
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    return text


if __name__ == "__main__":
    current = README.read_text()
    new = render(current)
    if "--check" in sys.argv:
        sys.exit(0 if new == current else 1)
    README.write_text(new)
