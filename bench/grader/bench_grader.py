"""Grader benchmark: gRPC vs in-process, cold vs cached answers vs parsing alone, peak memory,
and 32 concurrent validations. Prints a Markdown table; see docs/benchmarks.md.

    PYTHONPATH=. .venv/bin/python bench/grader/bench_grader.py [--rows 100000 1000000] [--repeats 5]

Servers run as separate processes (`mleb serve`), as in production; the client is this
process. Every figure is a median over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc

from services.common.auth import Role, TokenAuthority
from services.common.settings import Settings
from services.grader.bundles import LocalBundleProvider
from services.grader.core import GraderCore
from services.grader.reading import read_submission
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.registry.importers.own_format import import_competition
from tests.fixtures.processes import settings_env, spawn_server

COMPETITION = "tabular-playground-series-dec-2021"
SECRET = "bench:" + "b" * 40
CHUNK = 1024 * 1024


def make_competition(root: Path, rows: int) -> tuple[Path, bytes]:
    """A competition folder with `rows` answers and a submission that is 90% right."""
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 8, rows)
    answers = pd.DataFrame({"Id": np.arange(rows), "Cover_Type": truth})
    for i in range(8):
        answers[f"Feature_{i}"] = rng.normal(size=rows).round(6)
    guess = np.where(rng.random(rows) < 0.9, truth, rng.integers(1, 8, rows))
    submission = pd.DataFrame({"Id": np.arange(rows), "Cover_Type": guess})
    folder = root / f"{COMPETITION}-{rows}"
    (folder / "public").mkdir(parents=True)
    (folder / "private").mkdir()
    answers.to_csv(folder / "private" / "test.csv", index=False)
    submission.head(5).to_csv(folder / "public" / "sample_submission.csv", index=False)
    (folder / "description.md").write_text("# Bench\n")
    scores = np.linspace(0.99, 0.5, 500)
    pd.DataFrame({"score": scores}).to_csv(folder / "leaderboard.csv", index=False)
    (folder / "competition.yaml").write_text(
        f"id: {COMPETITION}\nname: Bench\nmetric: {{name: accuracy}}\nid_columns: [Id]\n"
        "target_columns: [Cover_Type]\nanswers: test.csv\nsample_submission: "
        "sample_submission.csv\ncategory: Tabular\ncomplexity: low\nawards_medals: true\n"
    )
    return folder, submission.to_csv(index=False).encode()


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def median_time_async(make_call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await make_call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def grade_requests(data: bytes, kind=pb.GradeSubmissionRequest):
    yield kind(header=pb.SubmissionHeader(competition_id=COMPETITION, size_bytes=len(data)))
    for offset in range(0, len(data), CHUNK):
        yield kind(chunk=data[offset : offset + CHUNK])


async def concurrent_validations(address: str, token: str, data: bytes, n: int) -> dict:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        meta = (("authorization", f"Bearer {token}"),)

        async def one() -> float:
            started = time.perf_counter()
            reply = await stub.ValidateSubmission(
                grade_requests(data, pb.ValidateSubmissionRequest), metadata=meta
            )
            assert reply.valid, reply.message
            return time.perf_counter() - started

        await one()  # warm
        started = time.perf_counter()
        latencies = sorted(await asyncio.gather(*(one() for _ in range(n))))
        wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "p50_s": latencies[len(latencies) // 2],
        "p99_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "single_s": latencies[0],
    }


def bench_rows(rows: int, repeats: int, root: Path) -> dict:
    data_root = root / f"run-{rows}"
    settings = Settings(
        data_dir=data_root / "data",
        database_url=f"sqlite:///{data_root / 'mleb.db'}",
        auth_secret=SECRET,
    )
    folder, submission = make_competition(root, rows)
    core = RegistryCore.from_settings(settings)
    import_competition(CompetitionInstaller(core.sessions, core.storage), folder)
    core.close()
    token = TokenAuthority.from_spec(SECRET).issue(Role.LAB, "bench")
    registry = spawn_server("registry", settings_env(settings))
    grader = spawn_server("grader", settings_env(replace(settings, registry_addr=registry.address)))
    try:
        answers = folder / "private" / "test.csv"
        parse = median_time(lambda: read_submission(io.BytesIO(submission)), repeats)

        def in_process(provider):
            return GraderCore(provider).grade(COMPETITION, io.BytesIO(submission), "s.csv")

        async def in_process_times() -> tuple[float, float, float]:
            cached_provider = LocalBundleProvider(COMPETITION, answers)
            score = (await in_process(cached_provider)).score
            cached = await median_time_async(lambda: in_process(cached_provider), repeats)
            cold = await median_time_async(
                lambda: in_process(LocalBundleProvider(COMPETITION, answers)), repeats
            )
            return score, cached, cold

        score, cached, cold = asyncio.run(in_process_times())
        with grpc.insecure_channel(grader.address) as channel:
            stub = grader_service_pb2_grpc.GraderServiceStub(channel)
            meta = (("authorization", f"Bearer {token}"),)
            remote_score = stub.GradeSubmission(
                grade_requests(submission), metadata=meta
            ).report.score
            remote = median_time(
                lambda: stub.GradeSubmission(grade_requests(submission), metadata=meta), repeats
            )
        assert remote_score == score, (remote_score, score)
        concurrent = (
            asyncio.run(concurrent_validations(grader.address, token, submission, 32))
            if rows <= 100_000
            else None
        )
        return {
            "rows": rows,
            "submission_mb": len(submission) / 1e6,
            "parse_s": parse,
            "in_process_cached_s": cached,
            "in_process_cold_s": cold,
            "grpc_cached_s": remote,
            "grpc_overhead": remote / cached - 1,
            "cached_over_parse": cached / parse,
            "grader_peak_rss_mb": peak_rss_mb(grader.process.pid),
            "concurrent_validate_32": concurrent,
        }
    finally:
        grader.kill()
        registry.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_rows(rows, args.repeats, Path(tmp)) for rows in args.rows]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
