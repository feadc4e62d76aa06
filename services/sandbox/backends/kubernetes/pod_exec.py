"""Running the in-Pod program (services.sandbox.node.pod_sidecar) through the exec API.

Blocking: run it on a thread of the backend's own. Every exec has an overall deadline, and
whatever goes wrong on the way (the API, the WebSocket, a stream that closes without a
status) is a BackendError.
"""

from __future__ import annotations

import functools
import time
from typing import IO, Any

from services.sandbox.backends.base import BackendError

# Bytes of the program's stderr kept for the error message.
_STDERR_TAIL = 2000
# How long the WebSocket may wait for the API server on connecting, and within a frame.
SOCKET_TIMEOUT_S = 30.0


class ExecFailed(BackendError):
    """The program ran and exited non-zero (`code`)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class OutputTooLarge(BackendError):
    """The program wrote more than the caller takes (the agent's outputs, too big)."""


def _stream() -> Any:
    """kubernetes.stream.stream, with its WebSocket client keeping no copy of all it read
    (by default it does, in memory, for read_all(): gigabytes of outputs)."""
    from kubernetes.stream import stream, ws_client

    call = functools.partial(ws_client.websocket_call, capture_all=False)
    return functools.partial(stream.func, call, None)


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
    import websocket
    from kubernetes import client

    # The connect's timeout: websocket-client has no other way to set it.
    websocket.setdefaulttimeout(SOCKET_TIMEOUT_S)
    # stream() swaps its client's request method while it runs: never on a shared client.
    api_client = client.ApiClient(configuration)
    try:
        try:
            response = _stream()(
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
            # A frame that stalls half-way ends the exec instead of the thread.
            response.sock.settimeout(SOCKET_TIMEOUT_S)
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
                raise OutputTooLarge(f"the agent's outputs are over {max_bytes} bytes")
            if sink is not None:
                sink.write(data)
        if response.peek_stderr():
            errors = (errors + response.read_stderr())[-_STDERR_TAIL:]
    return errors
