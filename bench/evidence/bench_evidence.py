"""What verifiable runs cost: the audit record on every grader call, and the evidence of every
finished sandbox, each against the same work without it, measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/evidence/bench_evidence.py [--calls 60] [--rows 1000 100000]

- Per validation call: ValidateSubmission through a gRPC grader whose calls go to a real
  registry's audit chain (SQLite), against an identical grader whose chain client returns at
  once (the unsigned path). Both graders and the registry are real servers on 127.0.0.1.
- Per sandbox: what a finished sandbox adds, piece by piece (the chain append of its end and
  egress, reading its segment back, the Ed25519 signature), against `docker run --rm` of a
  busybox `true`, the least a sandbox can cost, in the same run.

Prints Markdown for docs/benchmarks.md. Every figure is a median.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
from mleb.evidence.chain import ChainRecord
from mleb.evidence.dsse import SANDBOX_PREDICATE
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc

from bench.grader.bench_grader import median_time
from services.common.audit_client import AuditChainClient
from services.common.server import ServiceDefinition, start_server
from services.common.settings import Settings
from services.common.signing import signing_keys
from services.grader.bundles import LocalBundleProvider
from services.grader.core import GraderCore
from services.grader.evidence import GraderEvidence
from services.grader.servicer import RPC_ROLES, GraderServicer
from services.registry.app import registry_service

COMPETITION = "spaceship-titanic"
CHUNK = 1024 * 1024


class UnrecordedChain:
    """The baseline: a chain client that records nothing and answers at once."""

    async def append(self, events):
        return [ChainRecord(i + 1, "0" * 64, "0" * 64, "0" * 64, {}) for i in range(len(events))]


def write_answers(root: Path, rows: int) -> tuple[Path, bytes]:
    ids = [f"{i:06d}_01" for i in range(rows)]
    answers = root / f"answers-{rows}.csv"
    answers.write_text(
        "PassengerId,Transported\n" + "".join(f"{i},{n % 2 == 0}\n" for n, i in enumerate(ids))
    )
    submission = "PassengerId,Transported\n" + "".join(f"{i},True\n" for i in ids)
    return answers, submission.encode()


def grader(answers: Path, chain) -> ServiceDefinition:
    core = GraderCore(LocalBundleProvider(COMPETITION, answers), max_submission_bytes=1 << 30)
    return ServiceDefinition(
        full_name="mleb.grader.v1.GraderService",
        servicer=GraderServicer(core, GraderEvidence(chain, signing_keys(None))),
        add_to_server=grader_service_pb2_grpc.add_GraderServiceServicer_to_server,
        rpc_roles=RPC_ROLES,
    )


def requests(data: bytes):
    yield pb.ValidateSubmissionRequest(
        header=pb.SubmissionHeader(competition_id=COMPETITION, size_bytes=len(data))
    )
    for start in range(0, len(data), CHUNK):
        yield pb.ValidateSubmissionRequest(chunk=data[start : start + CHUNK])


async def median_call(stub, data: bytes, calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        reply = await stub.ValidateSubmission(requests(data))
        times.append(time.perf_counter() - started)
        assert reply.valid, reply.reason
    return statistics.median(times)


def docker_true(repeats: int) -> float | None:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "mleb-test-busybox", "true"],
            capture_output=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return None
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sandbox_predicate() -> dict:
    """About the size of a real attestation's predicate, with a few egress destinations."""
    egress = [{"host": f"api{i}.example.com", "port": 443, "connections": 3} for i in range(8)]
    return {
        "sandbox": {"id": "sbx-" + "0" * 20, "tenant": "lab", "node": "n"},
        "network": {"mode": "allowlist", "egress": egress},
        "audit": {"segment_digest": "a" * 64, "records": 40},
        "usage": {"cpu_seconds": 1.0, "peak_memory_bytes": 1 << 30},
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 100000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = Settings(
            data_dir=root / "data", database_url=f"sqlite:///{root / 'r.db'}", auth_disabled=True,
            log_level="warning", validate_rate_per_s=1e9, validate_burst=10**9,
        )  # fmt: skip
        registry = await start_server([registry_service(settings)], settings, port=0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}")
        chain = AuditChainClient(channel, ())
        print(f"Machine: {platform.machine()}, Python {platform.python_version()}, "
              f"{args.calls} calls per figure, medians.\n")  # fmt: skip
        print("| rows | ValidateSubmission, audited | unaudited | audited / unaudited |")
        print("|---|---|---|---|")
        for rows in args.rows:
            answers, submission = write_answers(root, rows)
            audited = await start_server([grader(answers, chain)], settings, port=0)
            plain = await start_server([grader(answers, UnrecordedChain())], settings, port=0)
            medians = []
            for server in (audited, plain):
                async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as to:
                    stub = grader_service_pb2_grpc.GraderServiceStub(to)
                    await median_call(stub, submission, 3)  # warm the answers cache
                    medians.append(await median_call(stub, submission, args.calls))
            await audited.stop(0)
            await plain.stop(0)
            print(f"| {rows:,} | {medians[0] * 1e3:.1f} ms | {medians[1] * 1e3:.1f} ms | "
                  f"{medians[0] / medians[1]:.2f}x |")  # fmt: skip
        keys = signing_keys(None)
        sign = await median_time(
            lambda: asyncio.sleep(0, keys.sign_statement({"s": "a" * 64}, SANDBOX_PREDICATE,
                                                         sandbox_predicate())),
            200,
        )  # fmt: skip
        end = [("egress", {"sandbox_id": "sbx-b", "host": f"h{i}", "port": 443}) for i in range(4)]
        end.append(("sandbox_lifecycle", {"sandbox_id": "sbx-b", "event": "finished"}))
        append = await median_time(lambda: chain.append(end), 50)
        head = (await chain.append(end))[-1].seq
        export = await median_time(lambda: chain.export(max(1, head - 40), head), 50)
        bare = await asyncio.to_thread(docker_true, 5)
        total = sign + append + export
        print("\n| per finished sandbox | median |")
        print("|---|---|")
        print(f"| append its end and egress (5 records) | {append * 1e3:.1f} ms |")
        print(f"| read its segment back (40 records) | {export * 1e3:.1f} ms |")
        print(f"| sign the attestation (Ed25519, DSSE) | {sign * 1e3:.2f} ms |")
        print(f"| total | {total * 1e3:.1f} ms |")
        if bare is not None:
            print(f"| `docker run --rm` busybox `true` (baseline) | {bare * 1e3:.0f} ms |")
            print(f"| evidence / baseline | {total / bare:.3f}x |")
        await channel.close()
        await registry.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
