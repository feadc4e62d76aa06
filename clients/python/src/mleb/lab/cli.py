"""The `mleb` command: the lab's commands, plus those of any installed server package.

A server distribution adds its commands through an entry point in the group
"mleb.commands": a Typer app whose commands join these at the top level. So `pip install
'mleb[lab]'` alone gives a lab everything it needs against a remote deployment (run, logs,
cancel, report, verify, keys), and installing mleb-server adds serve, registry, token, demo
and the other operator commands to the same `mleb`.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from mleb.lab import evidence_cmds, report_cmds, run_cmds

COMMAND_GROUP = "mleb.commands"


def build_app(*extra: typer.Typer) -> typer.Typer:
    """The lab's commands, then `extra` and the installed entry points' (each app once)."""
    app = typer.Typer(help="mleb: MLE-bench as gRPC services.", no_args_is_help=True)
    app.command("run")(run_cmds.run)
    app.command("logs")(run_cmds.logs)
    app.command("cancel")(run_cmds.cancel)
    app.command("report")(report_cmds.report)
    app.command("verify")(evidence_cmds.verify)
    app.add_typer(evidence_cmds.keys_app, name="keys")
    added = list(extra)
    for entry in entry_points(group=COMMAND_GROUP):
        try:
            commands = entry.load()
        except ImportError as exc:
            # A broken server install must not take the lab's commands down with it.
            print(f"mleb: skipping {COMMAND_GROUP} entry {entry.name!r}: {exc}", file=sys.stderr)
            continue
        if commands not in added:
            added.append(commands)
    for commands in added:
        app.add_typer(commands)
    return app
