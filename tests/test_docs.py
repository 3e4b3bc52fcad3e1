"""The README's generated table is current, and it opens with the two set-up commands."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_zoo_table_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, (
        f"README.md is stale: run python scripts/update_readme.py\n{result.stderr}")


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "train"], ["make", "test"]]
