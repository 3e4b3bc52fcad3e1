"""The generated parts of the documentation site, from the code and from zoo/.

Called at build time by the mkdocs hooks (scripts/docs_hooks.py, `make docs`) and by
scripts/update_readme.py; nothing here is written into the repository. A config key without
a help text stops the build with one line (`DocsError`).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import yaml

from actorcritic import config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PRESETS = ROOT / "actorcritic" / "presets"
RESULTS = DOCS / "RESULTS.md"


class DocsError(Exception):
    """A generated page cannot be made; its message is one line."""


def missing_help() -> list[str]:
    """Config keys whose field carries no help text."""
    return [f"{section}.{f.name}" for section, cls in config.SECTIONS.items()
            for f in dataclasses.fields(cls) if not str(f.metadata.get("help") or "").strip()]


def check_help() -> None:
    missing = missing_help()
    if missing:
        raise DocsError(f"config key(s) without a help text: {', '.join(missing)} (give each "
                        "field a help text in actorcritic/config.py)")


def config_rows() -> dict[str, str]:
    """Each key's row of the reference table, by key."""
    check_help()
    rows = config.reference_table().splitlines()[2:]
    return {re.match(r"\| `([^`]+)`", r).group(1): r for r in rows}


def keys_table(keys: list[str]) -> str:
    rows = config_rows()
    unknown = [k for k in keys if k not in rows]
    if unknown:
        raise DocsError(f"a page names config key(s) that do not exist: {', '.join(unknown)}")
    return "\n".join(["| key | default | meaning |", "|---|---|---|"] + [rows[k] for k in keys])


def config_page() -> str:
    check_help()
    return "\n".join([
        "# Configuration reference", "",
        "Generated from the help texts of the config dataclasses (`actorcritic/config.py`) "
        "when the site is built: every key, its default and what it means.", "",
        "Override any key with `--set section.key=value` (values are read as YAML), or in "
        "Python with `overrides=[\"section.key=value\"]`. An unknown key, a wrong type or an "
        "out-of-range value is one clear error line and exit code 2. "
        "`actorcritic config PRESET` prints a preset fully resolved; any YAML file with the "
        "same sections works in place of a preset name.", "",
        config.reference_table(), ""])


def preset_algorithms() -> dict[str, tuple[str, str]]:
    """Each preset's (algo.name, run.backend), as its YAML file sets them."""
    out = {}
    for path in sorted(PRESETS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        out[path.stem] = ((data.get("algo") or {}).get("name", "a2c"),
                          (data.get("run") or {}).get("backend", "local"))
    return out


def presets_table(algo: str | None = None) -> str:
    algos = preset_algorithms()
    rows = ["| preset | what it trains |", "|---|---|"]
    rows += [f"| `{name}` | {desc} |" for name, desc in config.list_presets().items()
             if algo is None or algos.get(name, ("",))[0] == algo]
    if len(rows) == 2:
        return "No preset uses it yet."
    return "\n".join(rows)


def presets_page() -> str:
    return "\n".join([
        "# Presets", "",
        "Generated from `actorcritic/presets/*.yaml` when the site is built. Train one with "
        "`actorcritic train NAME` (or `make train PRESET=NAME EXTRAS=...`); "
        "`actorcritic config NAME` shows it resolved. What the shipped agents reach: "
        "[Results](../RESULTS.md).", "",
        presets_table(), ""])


def results_rows() -> list[dict[str, str]]:
    """The rows of docs/RESULTS.md's main table, its first (generated from zoo/ and checked
    current); the per-scenario and published-figure tables after it are left out."""
    table = itertools.takewhile(lambda ln: ln.startswith("|"), itertools.dropwhile(
        lambda ln: not ln.startswith("|"), RESULTS.read_text().splitlines()))
    lines = [ln for ln in table if ln.startswith("| ")]  # not the |---| line
    header = [c.strip() for c in lines[0].strip().strip("|").split("|")]
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append(dict(zip(header, cells)))
    return rows


def zoo_table(algo: str | None = None, prefix: str = "") -> str:
    """The shipped agents (of one algorithm): what each reaches; prefix: path to the root."""
    rows = [r for r in results_rows() if r.get("algorithm")
            and (algo is None or r["algorithm"] == algo)]
    if not rows:
        return "No agent of this algorithm ships in `zoo/` yet."
    out = ["| agent | env steps | wall time | evaluation | sticky evaluation | published |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{r['scenario']}` | {r['env steps']} | {r['wall time']} | "
                   f"{r['evaluation']} | {r['sticky evaluation']} | {r['published']} |")
    if algo is not None:
        out.append("")
        for r in rows:
            out += [f"![{r['scenario']}]({prefix}zoo/{r['scenario']}/curve.png)",
                    f"*`zoo/{r['scenario']}`: training curve.*", ""]
    return "\n".join(out)


def figures(algo: str, prefix: str = "") -> str:
    """The figures in docs/ whose file name names the algorithm (each carries its date)."""
    pngs = sorted(p.name for p in DOCS.glob("*.png") if re.search(rf"-{algo}([-.])", p.name))
    if not pngs:
        return "No figure of this algorithm yet."
    return "\n".join(f"![{n}]({prefix}{n})\n*{n}* (discussed in [Benchmarks]"
                     f"({prefix}BENCHMARKS.md))\n" for n in pngs)


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {marker}:BEGIN -->\n(.*?)<!-- {marker}:END -->", text, re.S)
    if not block:
        raise DocsError(f"README.md lost its {marker} markers")
    return block.group(1).rstrip("\n")


def zoo_curves() -> list[Path]:
    return sorted((ROOT / "zoo").glob("*/curve.png"))


MARKER = re.compile(r"<!-- gen:(\w+)(?: ([^>]*?))? -->")


def expand(markdown: str, prefix: str = "") -> str:
    """Replace the page's `<!-- gen:NAME ARGS -->` markers by what they generate."""
    def one(m: re.Match) -> str:
        name, args = m.group(1), (m.group(2) or "").split()
        if name == "keys":
            return keys_table(args)
        if name == "presets":
            return presets_table(args[0] if args else None)
        if name == "zoo":
            return zoo_table(args[0] if args else None, prefix)
        if name == "figures":
            return figures(args[0], prefix)
        if name == "readme":
            return readme_block(args[0])
        raise DocsError(f"unknown generator <!-- gen:{name} --> in a page")
    return MARKER.sub(one, markdown)
