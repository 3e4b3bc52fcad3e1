"""The documentation site builds in strict mode (`make docs`), with a page per algorithm, the
configuration reference generated with every key, and the API reference; a config key
without a help text fails the build with one line; the README stays a short landing page."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from actorcritic import config

ROOT = Path(__file__).resolve().parent.parent
ALGORITHM_PAGES = ("a2c", "a3c", "ppo", "impala", "sac", "td3", "a3c-ps", "ray")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _env() -> dict:
    import os
    return {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def page(site: Path, uri: str) -> str:
    path = site / uri / "index.html"
    assert path.is_file(), f"the site has no page {uri}"
    return path.read_text()


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_every_algorithm_has_its_page(site):
    for name in ALGORITHM_PAGES:
        html = page(site, f"algorithms/{name}")
        for section in ("When to pick it", "Presets", "Config keys", "Paper"):
            assert section in text_of(html), (name, section)
    # The presets and what the shipped agents reach are generated into them.
    a2c = page(site, "algorithms/a2c")
    assert "<code>pong-a2c-tuned</code>" in a2c and "zoo/pong-a2c-tuned/curve.png" in a2c
    assert (site / "zoo" / "pong-a2c-tuned" / "curve.png").is_file()
    assert "<code>pendulum-ppo</code>" in page(site, "algorithms/ppo")
    assert "<code>pendulum-sac</code>" in page(site, "algorithms/sac")
    assert "<code>hopper-td3</code>" in page(site, "algorithms/td3")


def test_the_configuration_reference_has_every_key(site):
    html = page(site, "reference/config")
    missing = [k for k in config.valid_keys() if f"<code>{k}</code>" not in html]
    assert not missing, missing
    presets = page(site, "reference/presets")
    assert all(f"<code>{name}</code>" in presets for name in config.list_presets())


def test_the_api_reference_is_generated_from_the_docstrings(site):
    html = text_of(page(site, "reference/api"))
    for name in ("actorcritic.training.train", "actorcritic.agent.load", "actorcritic.agent.Agent",
                 "actorcritic.config.load_config", "actorcritic.registry"):
        assert name in html, name
    assert "Loading never runs code from the file" in html  # load's docstring


def test_the_pages_a_user_needs_exist(site):
    for uri in ("getting-started", "environments", "CUSTOM", "training", "export", "RESULTS",
                "BENCHMARKS", "DISTRIBUTED", "ROBUSTNESS", "architecture"):
        page(site, uri)
    assert "import actorcritic" in text_of(page(site, "getting-started"))  # README's example


def test_a_config_key_without_help_fails_the_build_with_one_line(monkeypatch, tmp_path, caplog):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    @dataclasses.dataclass
    class Undocumented:
        knob: int = dataclasses.field(default=0)

    monkeypatch.setitem(config.SECTIONS, "extra", Undocumented)
    cfg = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path / "site"))
    with pytest.raises(Abort):
        build(cfg)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert "extra.knob" in errors[0] and "help" in errors[0] and "\n" not in errors[0]


def test_a_page_naming_an_unknown_key_fails():
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs_pages

    with pytest.raises(docs_pages.DocsError, match="algo.no_such_key"):
        docs_pages.expand("<!-- gen:keys algo.lr algo.no_such_key -->")


def test_the_readme_is_a_short_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines (at most 150)"
    text = "\n".join(lines)
    for link in ("docs/getting-started.md", "docs/CUSTOM.md", "docs/RESULTS.md"):
        assert f"]({link})" in text, link
