"""The in-Pod half of the Kubernetes backend (services.sandbox.backends.kubernetes): one
program, run from the node image in each sandbox's Pod.

- `stage` (the init container): the competition's public files, fetched from the registry
  with the sandbox's token and each checked against the listing the service's digest names,
  into /home/data; then the sandbox's own description over the placeholder.
- `serve` (the `endpoints` container): the validation and grader endpoints on the Pod's
  loopback, which the agent shares, as the node runner serves them on a Slurm node.
- `ready` (that container's postStart hook): returns once `serve` listens. The kubelet starts
  the next container, the agent, only after the hook returns.
- `stop` (exec'd by the service): SIGTERM to the agent's processes, SIGKILL after the grace.
- `collect` (exec'd by the service once the agent has ended): a tar of its outputs on stdout.

The Pod shares one process namespace, and `endpoints` runs as the agent's user, so it may
signal the agent. It holds nothing the agent does not (the sandbox's token, the grader's
address). Each of its processes makes itself non-dumpable first, so the agent, though of
the same user, can neither trace them nor read their memory; it can still kill them, and
then loses its own validation and outputs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from services.common.channels import bearer_metadata, service_channel
from services.common.settings import Settings
from services.sandbox.backends.base import (
    DATA_DIR,
    GRPC_GRADER_PORT,
    HTTP_VALIDATE_PORT,
    NetworkMode,
)
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.node import sidecar_forwarder
from services.sandbox.node.egress_proxy import AddressPolicy
from services.sandbox.node.endpoints import GRADER_SOCKET, VALIDATE_SOCKET, SandboxEndpoints
from services.sandbox.node.public_fetch import DESCRIPTION, fetch_from_registry
from services.sandbox.node.registry_client import RegistryCompetitions

# Where the Pod's volumes are mounted in the node image's containers. The endpoints' sockets
# are in a folder of their own beneath: a volume's top folder is root's, and its mode fixed.
RUN_DIR = Path("/run/mleb")
SOCKETS_DIR = RUN_DIR / "sockets"
READY_FILE = RUN_DIR / "ready"
FILES_DIR = Path("/mleb/files")
OUTPUTS_DIR = Path("/mleb/outputs")
OUTPUT_FOLDERS = ("submission", "logs", "code")
# Each collected file is read at most this far: the service refuses an archive over its cap
# anyway, and a file the agent is still growing cannot keep the tar open.
_COPY_CHUNK = 1 << 20


_PR_SET_DUMPABLE = 4
# Python for the forwarder's interpreter: non-dumpable first, then the forwarder as __main__
# (argv: its path, then its routes).
_RUN_NON_DUMPABLE = (
    f"import ctypes, runpy, sys; ctypes.CDLL(None).prctl({_PR_SET_DUMPABLE}, 0, 0, 0, 0); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _non_dumpable() -> None:
    """PR_SET_DUMPABLE 0: no ptrace attach, no /proc/<pid>/mem or environ, from the agent."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise SystemExit(f"pod_sidecar: prctl failed ({ctypes.get_errno()})")


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"pod_sidecar: {name} is not set")
    return value


# stage


async def _stage(data_dir: Path) -> None:
    competition_id = _env("MLEB_COMPETITION_ID")
    channel = service_channel(_env("MLEB_REGISTRY_ADDR"), _settings())
    threads = WorkerThreads(4)
    try:
        registry = RegistryCompetitions(channel, bearer_metadata(_env("MLEB_SANDBOX_TOKEN")))
        await fetch_from_registry(
            registry, competition_id, _env("MLEB_LISTING_DIGEST"), data_dir, threads
        )
    finally:
        threads.shutdown()
        await channel.close()
    description = data_dir / DESCRIPTION
    description.unlink(missing_ok=True)  # a public description.md, read-only
    description.write_bytes((FILES_DIR / DESCRIPTION).read_bytes())
    description.chmod(0o444)


def _settings() -> Settings:
    ca = os.environ.get("MLEB_TLS_CA", "")
    return Settings(data_dir=Path("/tmp"), database_url="", client_tls_ca=Path(ca) if ca else None)


# serve and ready


async def _serve() -> None:
    token = _env("MLEB_SANDBOX_TOKEN")
    endpoints = SandboxEndpoints(_env("MLEB_GRADER_ADDR"), _settings(), AddressPolicy([]), None)
    await endpoints.open(_env("MLEB_SANDBOX_ID"), SOCKETS_DIR, token, NetworkMode.NONE, [])
    forwarder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        "-c",
        _RUN_NON_DUMPABLE,
        sidecar_forwarder.__file__,
        f"{HTTP_VALIDATE_PORT}={SOCKETS_DIR / VALIDATE_SOCKET}",
        f"{GRPC_GRADER_PORT}={SOCKETS_DIR / GRADER_SOCKET}",
        stdout=subprocess.PIPE,
    )
    assert forwarder.stdout is not None
    line = await forwarder.stdout.readline()
    if line.decode().strip() != sidecar_forwarder.READY_LINE:
        raise SystemExit("pod_sidecar: the loopback forwarder did not start")
    READY_FILE.write_text("ready\n")
    print("mleb endpoints ready", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    forwarder_ended = asyncio.ensure_future(forwarder.wait())
    await asyncio.wait(
        [forwarder_ended, asyncio.ensure_future(stopping.wait())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    if forwarder.returncode is None:
        forwarder.terminate()
    await forwarder_ended
    await endpoints.aclose()


def _wait_ready(limit_s: float = 60.0) -> int:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if READY_FILE.exists():
            return 0
        time.sleep(0.05)
    return 1


# stop


def _agent_pids() -> list[int]:
    """Processes of the Pod outside this container: the agent's. PID 1 is the Pod's pause
    process; a container's processes share one cgroup, and the agent's is not this one's."""
    mine = Path("/proc/self/cgroup").read_text()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry == "1":
            continue
        try:
            if Path(f"/proc/{entry}/cgroup").read_text() != mine:
                found.append(int(entry))
        except OSError:  # it has just ended
            continue
    return found


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def _stop(grace_s: float) -> int:
    _signal_all(_agent_pids(), signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _agent_pids():
            return 0
        time.sleep(0.1)
    _signal_all(_agent_pids(), signal.SIGKILL)
    return 0


# collect


def _plain_entries(root: Path, arcname: str) -> Iterator[tuple[str, int | None]]:
    """(name in the archive, descriptor or None for a folder) for every plain file and folder
    under root, none reached through a link: each is opened with O_NOFOLLOW beneath a folder
    opened the same way."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        top = os.open(root, flags | os.O_DIRECTORY)
    except OSError:
        return
    stack = [(top, arcname)]
    while stack:
        dir_fd, prefix = stack.pop()
        try:
            yield prefix, None
            with os.scandir(dir_fd) as entries:
                names = sorted(e.name for e in entries)
            for name in names:
                try:
                    fd = os.open(name, flags | os.O_NONBLOCK, dir_fd=dir_fd)
                except OSError:  # a link, a socket, a fifo, or gone
                    continue
                mode = os.fstat(fd).st_mode
                if stat.S_ISDIR(mode):
                    stack.append((fd, f"{prefix}/{name}"))
                elif stat.S_ISREG(mode):
                    try:
                        yield f"{prefix}/{name}", fd
                    finally:
                        os.close(fd)
                else:
                    os.close(fd)
        finally:
            os.close(dir_fd)


def _collect(out: object, most: int) -> int:
    """Exits 3, the tar cut short, past `most` files and folders (the service refuses it)."""
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for folder in OUTPUT_FOLDERS:
            for name, fd in _plain_entries(OUTPUTS_DIR / folder, folder):
                count += 1
                if count > most:
                    print(f"the outputs hold over {most} files and folders", file=sys.stderr)
                    return 3
                info = tarfile.TarInfo(name)
                if fd is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    continue
                info.size, info.mode = os.fstat(fd).st_size, 0o644
                with os.fdopen(os.dup(fd), "rb") as source:
                    tar.addfile(info, _Exactly(source, info.size))
    return 0


class _Exactly:
    """A file read as exactly `size` bytes (zeros past an end that moved since the stat)."""

    def __init__(self, source: object, size: int) -> None:
        self._source = source
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left, _COPY_CHUNK)
        data = self._source.read(n)  # type: ignore[attr-defined]
        data += b"\0" * (n - len(data))
        self._left -= n
        return data


def main(argv: list[str]) -> int:
    _non_dumpable()
    command = argv[0] if argv else ""
    if command == "stage":
        asyncio.run(_stage(Path(DATA_DIR)))
        return 0
    if command == "serve":
        asyncio.run(_serve())
        return 0
    if command == "ready":
        return _wait_ready()
    if command == "stop" and len(argv) == 2:
        return _stop(float(argv[1]))
    if command == "collect" and len(argv) == 2:
        return _collect(sys.stdout.buffer, int(argv[1]))
    print("usage: pod_sidecar stage|serve|ready|stop GRACE_S|collect MOST", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
