"""The local-process backend, for machines without Docker. It is NOT a security boundary.

The agent is a plain process: it shares the host's filesystem, network and kernel, and can
read whatever its user can read. What it does give:
- its own working folder holding data/, submission/, logs/ and code/ (no mounts, so the
  MLE-bench paths are passed as DATA_DIR, SUBMISSION_DIR, LOGS_DIR, CODE_DIR, ...);
- rlimits on CPU time, address space and processes;
- an unprivileged user (nobody) when the service runs as root;
- CUDA_VISIBLE_DEVICES set to the leased GPUs only;
- validation through the sandbox's Unix sockets (MLEB_GRADER_ADDR is a unix: address).
The private answers are never passed to it, as with every backend. Use Docker for real runs.

Each agent runs under a small shim (local_shim.py) in its own session, which writes the
output and the exit status to files, so agents survive a service restart and are re-attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from services.sandbox.backends.base import (
    BackendError,
    BackendProvider,
    Capabilities,
    ExitInfo,
    GpuAllocation,
    Handle,
    LaunchSpec,
    OnServiceHost,
    OutputLine,
    OutputStream,
    Usage,
)
from services.sandbox.backends.local import shim as local_shim

if TYPE_CHECKING:
    from services.sandbox.config import SandboxSettings

log = structlog.get_logger("mleb.sandbox.local")

WARNING = (
    "the local backend is NOT a security boundary: agents run as host processes and can "
    "read anything their user can; use the Docker backend for untrusted agents"
)
AGENT_USER = "nobody"
LABELS_FILE = "labels.json"
SHIM_PID_FILE = "shim.pid"
_POLL_S = 0.05
# How long remove() waits for a killed agent's runner to record the end and exit.
_RUNNER_EXIT_WAIT_S = 5.0
_START_TIMEOUT_S = 20.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (only our own children linger as zombies).
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


CAPABILITIES = Capabilities(
    needs_image=False,
    security_boundary=False,
    # The agent runs as a host process that could change a shared inode's mode: it gets its
    # own links, as before.
    mounts_public_cache=False,
    gpu_allocation=GpuAllocation.SERVICE_NVML,
    outputs_on_host=True,
)


class LocalBackend(OnServiceHost):
    name = "local"
    capabilities = CAPABILITIES

    def __init__(self, runs_dir: Path, *, agent_user: str = AGENT_USER) -> None:
        self._runs_dir = runs_dir
        self._agent_user = agent_user
        # Shims started by this process, so they are reaped rather than left as zombies.
        self._children: dict[str, subprocess.Popen] = {}
        log.warning("local_backend_in_use", note=WARNING)

    def _run_dir(self, sandbox_id: str) -> Path:
        return self._runs_dir / sandbox_id

    def _identity(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        entry = pwd.getpwnam(self._agent_user)
        return entry.pw_uid, entry.pw_gid

    def _check_reachable(self, root: Path, uid: int) -> None:
        """Fails early, and clearly, when the agent's user cannot enter its own folder."""
        for folder in [root, *root.parents]:
            info = folder.stat()
            if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
                raise BackendError(
                    f"user {self._agent_user} cannot enter {root}: {folder} is closed to "
                    "other users; point MLEB_SANDBOX_WORK_DIR at a folder they may traverse",
                    reason="RUNTIME_ERROR",
                )

    def _agent_env(self, spec: LaunchSpec) -> dict[str, str]:
        layout = spec.layout
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            **spec.env,
            "HOME": str(layout.root),
            "DATA_DIR": str(layout.data_dir),
            "SUBMISSION_DIR": str(layout.submission_dir),
            "LOGS_DIR": str(layout.logs_dir),
            "CODE_DIR": str(layout.code_dir),
            "INSTRUCTIONS_FILE": str(layout.instructions_file),
            "VALIDATE_SCRIPT": str(layout.validate_script),
            "MLEB_GRADER_ADDR": f"unix:{layout.sockets_dir / 'grader.sock'}",
            "MLEB_VALIDATE_SOCKET": str(layout.sockets_dir / "validate-http.sock"),
            # Empty hides every GPU: only leased ones are visible.
            "CUDA_VISIBLE_DEVICES": ",".join(spec.gpu_uuids),
        }
        return env

    def _rlimits(self, spec: LaunchSpec) -> dict[str, int]:
        limits = {"RLIMIT_AS": spec.memory_bytes, "RLIMIT_NPROC": spec.pids_limit}
        if spec.time_limit_s > 0:
            # CPU seconds the agent could use running flat out for its whole time limit.
            limits["RLIMIT_CPU"] = math.ceil(spec.cpus * spec.time_limit_s) + 60
        return {name: value for name, value in limits.items() if value > 0}

    async def launch(self, spec: LaunchSpec) -> Handle:
        log.warning("local_sandbox_launch", sandbox_id=spec.sandbox_id, note=WARNING)
        if not spec.command:
            raise BackendError(
                "the local backend has no image to take a command from; give a command",
                reason="RUNTIME_ERROR",
            )
        run_dir = self._run_dir(spec.sandbox_id)
        # A retried launch starts from a clean run folder.
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True, mode=0o700)
        (run_dir / LABELS_FILE).write_text(
            json.dumps({**spec.labels, "sandbox_id": spec.sandbox_id})
        )
        for socket_file in spec.layout.sockets_dir.glob("*.sock"):
            socket_file.chmod(0o666)
        identity = self._identity()
        if identity is not None:
            self._check_reachable(spec.layout.root, identity[0])
        shim_spec = {
            "argv": list(spec.command),
            "cwd": str(spec.layout.root),
            "env": self._agent_env(spec),
            "rlimits": self._rlimits(spec),
            "uid": identity[0] if identity else None,
            "gid": identity[1] if identity else None,
        }
        try:
            with (run_dir / "shim.err").open("wb") as shim_errors:
                shim = subprocess.Popen(
                    [sys.executable, local_shim.__file__, str(run_dir)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=shim_errors,
                    start_new_session=True,
                    cwd=run_dir,
                )
            assert shim.stdin is not None
            shim.stdin.write(json.dumps(shim_spec).encode())
            shim.stdin.close()
        except OSError as exc:
            raise BackendError(
                f"cannot start the local runner: {exc}", reason="RUNTIME_ERROR"
            ) from exc
        self._children[spec.sandbox_id] = shim
        (run_dir / SHIM_PID_FILE).write_text(str(shim.pid))
        await self._await_started(run_dir, shim)
        return Handle(spec.sandbox_id, str(shim.pid), "")

    async def _await_started(self, run_dir: Path, shim: subprocess.Popen) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not (run_dir / local_shim.AGENT_PID_FILE).exists():
            exit_file = run_dir / local_shim.EXIT_FILE
            if exit_file.exists():
                error = json.loads(exit_file.read_text()).get("error", "the agent did not start")
                raise BackendError(error, reason="RUNTIME_ERROR")
            if shim.poll() is not None or time.monotonic() > deadline:
                detail = (run_dir / "shim.err").read_text(errors="replace")[-2000:]
                raise BackendError(f"the local runner failed: {detail}", reason="RUNTIME_ERROR")
            await asyncio.sleep(_POLL_S)

    def _exit_record(self, sandbox_id: str) -> dict | None:
        try:
            return json.loads((self._run_dir(sandbox_id) / local_shim.EXIT_FILE).read_text())
        except FileNotFoundError:
            return None

    def _shim_alive(self, sandbox_id: str) -> bool:
        child = self._children.get(sandbox_id)
        if child is not None:
            return child.poll() is None
        pid = _read_int(self._run_dir(sandbox_id) / SHIM_PID_FILE)
        return pid is not None and _alive(pid)

    async def output(self, handle: Handle, since: float = 0.0) -> AsyncIterator[OutputLine]:
        path = self._run_dir(handle.sandbox_id) / local_shim.OUTPUT_FILE
        buffer = ""
        with contextlib.ExitStack() as stack:
            source = None
            while True:
                if source is None and path.exists():
                    source = stack.enter_context(path.open(encoding="utf-8"))
                finished = self._exit_record(handle.sandbox_id) is not None or not self._shim_alive(
                    handle.sandbox_id
                )
                chunk = source.read() if source is not None else ""
                buffer += chunk
                *complete, buffer = buffer.split("\n")
                for raw in complete:
                    item = json.loads(raw)
                    if item["t"] >= since:
                        yield OutputLine(OutputStream(item["s"]), item["x"], item["t"])
                if finished and not chunk:
                    return
                if not chunk:
                    await asyncio.sleep(_POLL_S)

    async def wait(self, handle: Handle) -> ExitInfo:
        while True:
            record = self._exit_record(handle.sandbox_id)
            if record is not None:
                self._reap(handle.sandbox_id)
                if "error" in record:
                    raise BackendError(record["error"], reason="RUNTIME_ERROR")
                return ExitInfo(int(record["exit_code"]), oom_killed=False)
            if not self._shim_alive(handle.sandbox_id):
                # Re-check: the shim may have written its record just before exiting.
                if self._exit_record(handle.sandbox_id) is None:
                    self._reap(handle.sandbox_id)
                    raise BackendError("the local runner died without an exit status")
                continue
            await asyncio.sleep(_POLL_S * 2)

    def _reap(self, sandbox_id: str) -> None:
        child = self._children.pop(sandbox_id, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    def _signal_agent(self, sandbox_id: str, sig: signal.Signals) -> None:
        pid = _read_int(self._run_dir(sandbox_id) / local_shim.AGENT_PID_FILE)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    async def stop(self, handle: Handle, grace_s: float) -> None:
        if self._exit_record(handle.sandbox_id) is not None:
            return
        self._signal_agent(handle.sandbox_id, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self._exit_record(handle.sandbox_id) is not None:
                return
            await asyncio.sleep(_POLL_S)
        self._signal_agent(handle.sandbox_id, signal.SIGKILL)

    async def writable_layer_bytes(self, handle: Handle) -> int | None:
        return None  # a local process writes wherever its user can: nothing to measure

    async def usage(self, handle: Handle) -> Usage:
        record = self._exit_record(handle.sandbox_id)
        if record is not None and "exit_code" in record:
            return Usage(record["cpu_seconds"], record["peak_memory_bytes"])
        pid = _read_int(self._run_dir(handle.sandbox_id) / local_shim.AGENT_PID_FILE)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return Usage()
        ticks = os.sysconf("SC_CLK_TCK")
        # Fields 14 and 15 of stat (utime, stime), counted after the ")" that ends the name.
        cpu = (int(stat[11]) + int(stat[12])) / ticks
        peak = next(
            (
                int(line.split()[1]) * 1024
                for line in status.splitlines()
                if line.startswith("VmHWM")
            ),
            0,
        )
        return Usage(cpu, peak)

    async def remove(self, handle: Handle) -> None:
        if self._exit_record(handle.sandbox_id) is None:
            self._signal_agent(handle.sandbox_id, signal.SIGKILL)
        # The runner writes the agent's end into the folder once the agent dies: wait for it
        # (ours, or one a former service started), or it can write after the folder is
        # deleted and leave it behind. Never killed by pid: that pid may be reused by now.
        deadline = time.monotonic() + _RUNNER_EXIT_WAIT_S
        while self._shim_alive(handle.sandbox_id) and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
        self._reap(handle.sandbox_id)
        shutil.rmtree(self._run_dir(handle.sandbox_id), ignore_errors=True)

    async def list_owned(self, instance_labels: dict[str, str]) -> list[tuple[Handle, bool]]:
        owned: list[tuple[Handle, bool]] = []
        if not self._runs_dir.is_dir():
            return owned
        for run_dir in sorted(self._runs_dir.iterdir()):
            try:
                labels = json.loads((run_dir / LABELS_FILE).read_text())
            except (OSError, ValueError):
                continue
            if any(labels.get(k) != v for k, v in instance_labels.items()):
                continue
            sandbox_id = labels["sandbox_id"]
            pid = _read_int(run_dir / SHIM_PID_FILE) or 0
            running = self._exit_record(sandbox_id) is None and self._shim_alive(sandbox_id)
            owned.append((Handle(sandbox_id, str(pid), ""), running))
        return owned


def _build(settings: SandboxSettings) -> LocalBackend:
    return LocalBackend(settings.work_dir / "local-runs")


PROVIDER = BackendProvider(LocalBackend.name, CAPABILITIES, _build)
