"""Regenerate the zoo's results table in README.md from docs/RESULTS.md (itself generated
from zoo/ by benchmarks/zoo_results.py).

Run `python scripts/update_readme.py`; tests/test_docs.py fails when the README is stale.
The preset and config-key references are pages of the documentation site, generated when
it is built (scripts/docs_pages.py).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from docs_pages import results_rows

README = Path(__file__).resolve().parent.parent / "README.md"


def zoo_table() -> str:
    rows = ["| agent | algorithm | env steps | evaluation | sticky evaluation | published |",
            "|---|---|---|---|---|---|"]
    rows += [f"| `{r['scenario']}` | {r['algorithm']} | {r['env steps']} | {r['evaluation']} | "
             f"{r['sticky evaluation']} | {r['published']} |"
             for r in results_rows() if r.get("algorithm")]
    return "\n".join(rows)


def render(text: str) -> str:
    for marker, table in (("ZOO", zoo_table()),):
        pattern = re.compile(rf"(<!-- {marker}:BEGIN -->\n).*?(<!-- {marker}:END -->)", re.S)
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    return text


if __name__ == "__main__":
    current = README.read_text()
    new = render(current)
    if "--check" in sys.argv:
        sys.exit(0 if new == current else 1)
    README.write_text(new)
