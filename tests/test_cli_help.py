"""Every option of every subcommand says in --help what it does."""

from __future__ import annotations

import argparse

from actorcritic.cli import build_parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_subcommand_and_option_has_help():
    parser = build_parser()
    subs = subcommands(parser)
    assert {"train", "eval", "plot", "report", "export", "tune", "presets", "config"} <= set(subs)
    missing = []
    for name, sub in subs.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help: {missing}"
    described = {a.dest for a in parser._actions if isinstance(a, argparse._SubParsersAction)}
    assert described and all(
        (choice.help or "").strip()
        for a in parser._actions if isinstance(a, argparse._SubParsersAction)
        for choice in a._choices_actions)
