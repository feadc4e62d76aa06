"""`mleb-validate FILE`: checks a submission from inside a sandbox, never revealing a score.

Reads MLEB_GRADER_ADDR and MLEB_SANDBOX_TOKEN (set by the sandbox), and the competition from
--competition, MLEB_COMPETITION_ID or COMPETITION_ID. Exit status: 0 valid, 1 invalid,
2 the check itself failed (bad usage, unreachable grader, ...).
"""

from __future__ import annotations

import argparse
import os
import sys

from mleb.client import Client
from mleb.errors import MlebError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mleb-validate", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="the submission CSV")
    parser.add_argument(
        "--competition",
        default=os.environ.get("MLEB_COMPETITION_ID") or os.environ.get("COMPETITION_ID", ""),
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if not args.competition:
        print(
            "mleb-validate: no competition (set --competition or COMPETITION_ID)", file=sys.stderr
        )
        return 2
    if not os.path.isfile(args.file):
        print(f"mleb-validate: no such file: {args.file}", file=sys.stderr)
        return 2
    token = os.environ.get("MLEB_SANDBOX_TOKEN") or os.environ.get("MLEB_TOKEN", "")
    try:
        with Client(token=token, timeout=args.timeout) as client:
            reply = client.validate_submission(args.competition, args.file)
    except MlebError as error:
        print(f"mleb-validate: {error}", file=sys.stderr)
        return 2
    print(reply.message)
    return 0 if reply.valid else 1


if __name__ == "__main__":
    sys.exit(main())
