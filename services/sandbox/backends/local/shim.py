"""Runs one local sandbox's agent and records what it does, like a container runtime's shim.

Started by the local backend in its own session, it outlives the service: the agent's output
goes to output.jsonl (one {"t", "s", "x"} object per line, with the time it was read) and its
end to exit.json, so a restarted service can re-attach, resume the log and collect the exit.

The launch spec (which holds secret values) arrives on stdin and is never written to disk.
Standard library only: it runs with whatever Python the service runs with, from its path.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

OUTPUT_FILE = "output.jsonl"
EXIT_FILE = "exit.json"
AGENT_PID_FILE = "agent.pid"


def _write_atomically(path: Path, content: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(content)
    os.replace(partial, path)


def _limit_and_drop(spec: dict) -> None:
    """Runs in the child between fork and exec."""
    os.setpgid(0, 0)
    for name, value in spec["rlimits"].items():
        limit = getattr(resource, name)
        resource.setrlimit(limit, (value, value))
    if spec.get("uid") is not None:
        os.setgroups([])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])


def _pump(stream, name: str, sink, lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        text = raw.decode("utf-8", errors="replace").rstrip("\n")
        record = json.dumps({"t": time.time(), "s": name, "x": text}) + "\n"
        with lock:
            sink.write(record)
            sink.flush()


def main(run_dir: Path) -> int:
    spec = json.loads(sys.stdin.read())
    sys.stdin.close()
    lock = threading.Lock()
    sink = (run_dir / OUTPUT_FILE).open("a", encoding="utf-8")
    try:
        child = subprocess.Popen(
            spec["argv"],
            cwd=spec["cwd"],
            env=spec["env"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: _limit_and_drop(spec),
        )
    except OSError as exc:
        _write_atomically(run_dir / EXIT_FILE, json.dumps({"error": f"cannot start: {exc}"}))
        return 1
    _write_atomically(run_dir / AGENT_PID_FILE, str(child.pid))
    # A stop aimed at the shim reaches the agent's whole process group.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: os.killpg(child.pid, s))
    pumps = [
        threading.Thread(target=_pump, args=(child.stdout, "stdout", sink, lock), daemon=True),
        threading.Thread(target=_pump, args=(child.stderr, "stderr", sink, lock), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = 0  # reaped here; stops Popen from waiting again
    for pump in pumps:
        # Processes the agent left behind may still hold the pipes; do not wait on them long.
        pump.join(timeout=5)
    sink.close()
    signalled = os.WIFSIGNALED(status)
    exit_code = 128 + os.WTERMSIG(status) if signalled else os.WEXITSTATUS(status)
    _write_atomically(
        run_dir / EXIT_FILE,
        json.dumps(
            {
                "exit_code": exit_code,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                # ru_maxrss is in KiB on Linux.
                "peak_memory_bytes": usage.ru_maxrss * 1024,
            }
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
