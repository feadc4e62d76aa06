"""Running the in-Pod program (services.sandbox.node.pod_sidecar) through the exec API.

Blocking: run it on a thread of the backend's own. Every exec has an overall deadline, and
whatever goes wrong on the way (the API, the WebSocket, a stream that closes without a
status) is a BackendError.
"""

from __future__ import annotations

import time
from typing import IO, Any

from services.sandbox.backends.base import BackendError

# Bytes of the program's stderr kept for the error message.
_STDERR_TAIL = 2000


class ExecFailed(BackendError):
    """The program ran and exited non-zero (`code`)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run_in_pod(
    configuration: Any,
    namespace: str,
    pod: str,
    container: str,
    command: list[str],
    *,
    deadline_s: float,
    sink: IO[bytes] | None = None,
    max_bytes: int = 0,
) -> None:
    """Runs `command` in the container; its stdout goes to `sink`, at most max_bytes."""
    from kubernetes import client
    from kubernetes.stream import stream

    # stream() swaps its client's request method while it runs: never on a shared client.
    api_client = client.ApiClient(configuration)
    try:
        try:
            response = stream(
                client.CoreV1Api(api_client).connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=command,
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
                binary=True,
                _preload_content=False,
            )
        except Exception as exc:
            raise BackendError(f"exec in Pod {pod} failed: {type(exc).__name__}") from exc
        try:
            errors = _pump(response, deadline_s, sink, max_bytes)
            code = response.returncode
        except BackendError:
            raise
        except Exception as exc:  # the WebSocket broke, or closed without a status
            raise BackendError(f"exec in Pod {pod} broke off: {type(exc).__name__}") from exc
        finally:
            response.close()
    finally:
        api_client.close()
    if code != 0:
        last = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise ExecFailed(f"{command[-1]} in Pod {pod} failed ({code}): {last[0][:300]}", code)


def _pump(response: Any, deadline_s: float, sink: IO[bytes] | None, max_bytes: int) -> bytes:
    deadline = time.monotonic() + deadline_s
    written = 0
    errors = b""
    while response.is_open():
        if time.monotonic() > deadline:
            raise BackendError(f"exec did not finish within {deadline_s:g}s")
        response.update(timeout=1)
        if response.peek_stdout():
            data = response.read_stdout()
            written += len(data)
            if max_bytes and written > max_bytes:
                raise BackendError(f"the agent's outputs are over {max_bytes} bytes")
            if sink is not None:
                sink.write(data)
        if response.peek_stderr():
            errors = (errors + response.read_stderr())[-_STDERR_TAIL:]
    return errors
