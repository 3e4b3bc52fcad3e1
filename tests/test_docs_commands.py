"""The command lines the documentation shows (the `actorcritic ...` lines of its shell
blocks) run as written, in order, on a CPU in seconds: each `train` gets a small budget
appended (`--set` repeats and the last value wins), `tune` fewer and shorter trials, and
the paths a page leaves to the reader (`runs/other`, `<timestamp>`) are filled in. A page
whose command no longer parses, names a missing preset or key, or fails, fails here.
(The Python snippets run in test_custom_env_and_encoder.py, test_export.py and
test_docs.py; `make train` and `make test` are what CI runs. CUSTOM.md's command line
names the reader's own module, my_envs, which only that reader has.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from actorcritic.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["docs/getting-started.md", "docs/training.md", "docs/export.md"]
SMALL = ["--quiet", "--set", "run.total_steps=2000", "run.eval_every=0",
         "run.eval_episodes=2", "run.stop_eval_return=null"]


def shell_lines(page: str) -> list[str]:
    """The `actorcritic` command lines of the page's bash blocks, comments stripped and
    continued lines joined."""
    text = (ROOT / page).read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("actorcritic "):
                lines.append(line)
    return lines


def test_the_pages_show_commands():
    for page in PAGES:
        assert shell_lines(page), f"{page} shows no actorcritic command"


def as_run_here(line: str, tmp: Path) -> list[str]:
    argv = shlex.split(line)[1:]
    if argv[0] == "train":
        argv += SMALL
        if "--resume" in argv:  # continue for 1,000 steps more than the run has
            argv += ["run.total_steps=3000"]
    if argv[0] == "tune":
        argv += ["--trials", "2", "--trial-steps", "1000"]
    return [a.replace("<timestamp>", "*") for a in argv]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_command_on_the_page_runs(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # Runs a page compares with but does not train itself.
    for seed, name in ((1, "cp1"), (2, "cp2"), (4, "other")):
        assert main(["train", "cartpole-a2c", "--seed", str(seed), "--run-dir",
                     f"runs/{name}", *SMALL]) == 0
    if page != "docs/getting-started.md":  # which trains cp3; the others read it
        assert main(["train", "cartpole-a2c", "--seed", "3", "--run-dir", "runs/cp3",
                     *SMALL]) == 0
    for line in shell_lines(page):
        argv = as_run_here(line, tmp_path)
        argv = [str(next(tmp_path.glob(a))) if "*" in a else a for a in argv]
        if argv[:2] == ["train", "cartpole-a2c"] and "--run-dir" in argv \
                and (tmp_path / argv[argv.index("--run-dir") + 1]).is_dir():
            argv.append("--overwrite")
        rc = main(argv)
        out = capsys.readouterr()
        assert rc == 0, f"{page}: `{line}` exited {rc}: {out.err[-500:]}"
