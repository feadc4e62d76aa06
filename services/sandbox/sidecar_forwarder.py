"""Forwards loopback TCP ports to host Unix sockets; runs inside a sandbox's sidecar.

The sidecar has no network route, only loopback; the agent shares its network namespace, so
`127.0.0.1:5000` and friends reach the host's endpoints through the mounted sockets and
nothing else. Runs as `python3 -I -S sidecar_forwarder.py PORT=SOCKET_PATH ...` on a
minimal interpreter, so it uses only socket, signal, sys and threading.
"""

import contextlib
import signal
import socket
import sys
import threading

READY_LINE = "mleb-sidecar ready"
_CHUNK = 65536


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        # Half-close so the other direction can still finish (HTTP request, then reply).
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _forward(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _accept_forever(server: socket.socket, socket_path: str) -> None:
    while True:
        client, _ = server.accept()
        threading.Thread(target=_forward, args=(client, socket_path), daemon=True).start()


def main(argv: list[str]) -> int:
    routes = []
    for arg in argv:
        port, sep, path = arg.partition("=")
        if not sep or not port.isdigit() or not path:
            print(f"usage: sidecar_forwarder.py PORT=SOCKET_PATH ... (got {arg!r})", flush=True)
            return 2
        routes.append((int(port), path))
    # Bind everything before announcing readiness: the agent starts after the ready line.
    servers = [
        (socket.create_server(("127.0.0.1", port), backlog=128), path) for port, path in routes
    ]
    # As PID 1 a default SIGTERM is ignored; exit promptly instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for server, path in servers:
        threading.Thread(target=_accept_forever, args=(server, path), daemon=True).start()
    print(READY_LINE, flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
