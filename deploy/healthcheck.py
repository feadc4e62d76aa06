"""Container health check: `mleb-healthcheck HOST:PORT` exits 0 when the gRPC server there
answers SERVING on the standard health service (which needs no token)."""

import sys

from services.cli.probe import probe


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: mleb-healthcheck HOST:PORT", file=sys.stderr)
        return 2
    result = probe(argv[1], timeout_s=2.0)
    print(f"{argv[1]}: {result['status']}")
    return 0 if result["status"] == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
