"""Forwards loopback TCP ports to host Unix sockets; runs inside a sandbox's sidecar.

The sidecar has no network route, only loopback; the agent shares its network namespace, so
`127.0.0.1:5000` and friends reach the host's endpoints through the mounted sockets and
nothing else. Runs as `python3 -I -S sidecar_forwarder.py PORT=SOCKET_PATH ...` on a
minimal interpreter.

It imports only the interpreter's built-in layer (_socket, _thread, _signal): every sandbox
start waits for the ready line, and the sidecar image's stdlib has no compiled modules, so
`import socket` alone (enum, selectors, collections compiled from source) took 110 ms of
the sidecar's start, and threading another 20 ms; these take none.
"""

import _signal  # type: ignore[import-not-found]  # no stub; signal would import enum
import _socket
import _thread
import sys

READY_LINE = "mleb-sidecar ready"
_CHUNK = 65536
_BACKLOG = 128


def _pump(source, sink, finished=None) -> None:
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        # Half-close so the other direction can still finish (HTTP request, then reply).
        # Not contextlib.suppress: contextlib imports collections and functools.
        try:  # noqa: SIM105
            sink.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
        if finished is not None:
            finished.release()


def _forward(client_fd: int, socket_path: str) -> None:
    client = _socket.socket(fileno=client_fd)
    upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = _thread.allocate_lock()
    back.acquire()
    _thread.start_new_thread(_pump, (upstream, client, back))
    _pump(client, upstream)
    back.acquire()  # until the other direction has ended too
    client.close()
    upstream.close()


def _accept_forever(server, socket_path: str) -> None:
    while True:
        client_fd, _ = server._accept()
        _thread.start_new_thread(_forward, (client_fd, socket_path))


def _listen(port: int):
    server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(_BACKLOG)
    return server


def main(argv: list[str]) -> int:
    routes = []
    for arg in argv:
        port, sep, path = arg.partition("=")
        if not sep or not port.isdigit() or not path:
            print(f"usage: sidecar_forwarder.py PORT=SOCKET_PATH ... (got {arg!r})", flush=True)
            return 2
        routes.append((int(port), path))
    # Bind everything before announcing readiness: the agent starts after the ready line.
    servers = [(_listen(port), path) for port, path in routes]
    # As PID 1 a default SIGTERM is ignored; exit promptly instead.
    _signal.signal(_signal.SIGTERM, lambda *_: sys.exit(0))
    for server, path in servers:
        _thread.start_new_thread(_accept_forever, (server, path))
    print(READY_LINE, flush=True)
    forever = _thread.allocate_lock()
    forever.acquire()
    forever.acquire()  # the SIGTERM handler interrupts this
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
