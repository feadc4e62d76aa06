"""The lab's side depends on the client package alone (issue 13): every module of mleb.lab
and mleb.evidence imports, and `mleb --help` lists the lab's commands, in an interpreter where
no server package can be imported at all."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import mleb.evidence
import mleb.lab

# Makes every server package unimportable, then imports what it is given.
BLOCKER = """
import importlib, sys
class NoServers:
    def find_spec(self, name, path=None, target=None):
        if name == "services" or name.startswith("services."):
            raise ImportError(f"server package imported from the lab side: {name}")
        return None
sys.meta_path.insert(0, NoServers())
sys.path = [p for p in sys.path if p not in ("", ".")]
for name in sys.argv[1:]:
    importlib.import_module(name)
"""


def _modules() -> list[str]:
    found = []
    for package in (mleb.lab, mleb.evidence):
        found += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(found)


def test_lab_modules_import_without_any_server_package() -> None:
    modules = _modules()
    assert "mleb.lab.orchestrator" in modules and "mleb.lab.verification" in modules
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, *modules, "mleb.command", "mleb.reports", "mleb.ranking"],
        capture_output=True, text=True, cwd="/", check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_blocker_catches_a_server_import() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, "services.common.settings"],
        capture_output=True, text=True, cwd="/", check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "server package imported" in done.stderr


def test_mleb_help_without_servers_lists_the_lab_commands() -> None:
    script = BLOCKER + "\nfrom mleb.lab.cli import build_app\nbuild_app()(['--help'])\n"
    # The installed server's entry point is found but cannot load here: the lab's commands
    # still work, and the broken plugin is named.
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd="/", check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert " run " in done.stdout and " verify " in done.stdout and " serve " not in done.stdout
    assert "mleb.commands" in done.stderr
