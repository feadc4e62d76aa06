"""Grader benchmark, per metric family: cached grading against pyarrow's parse of the same
submission, gRPC against in-process, cold answers, peak memory, and 32 concurrent validations.
Prints one JSON line per run, then all of them; see docs/benchmarks.md.

    PYTHONPATH=. .venv/bin/python bench/grader/bench_grader.py [--rows 100000 1000000] \
        [--families accuracy auc rmse log-loss] [--repeats 5]

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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pyarrow.csv as pa_csv
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

SECRET = "bench:" + "b" * 40
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Family:
    """One benchmarked competition: its hand-written spec grades it, as in production."""

    competition: str
    metric: str  # the own-format metric name (the spec by id wins over it)
    id_column: str
    target: str
    make: Callable[[np.random.Generator, int], tuple[pd.DataFrame, pd.DataFrame]]


def _hex_ids(rng: np.random.Generator, rows: int) -> np.ndarray:
    raw = rng.bytes(16 * rows)
    return np.array([raw[i : i + 16].hex() for i in range(0, 16 * rows, 16)], dtype=object)


def _spaceship(rng: np.random.Generator, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    # MLE-bench's split shuffles the held-out rows; the sample submission keeps that order.
    group = rng.permutation(rows)
    ids = np.array([f"{g // 3:04d}_{g % 3 + 1:02d}" for g in group], dtype=object)
    truth = rng.random(rows) < 0.5
    answers = pd.DataFrame({"PassengerId": ids, "HomePlanet": rng.choice(["Earth", "Mars"], rows)})
    answers["Age"] = rng.integers(0, 80, rows).astype(float)
    answers["Transported"] = truth
    guess = np.where(rng.random(rows) < 0.9, truth, ~truth)
    return answers, pd.DataFrame({"PassengerId": ids, "Transported": guess})


def _tps_may(rng: np.random.Generator, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = rng.permutation(rows)
    truth = rng.integers(0, 2, rows)
    answers = pd.DataFrame({"id": ids, "f_00": rng.normal(size=rows), "target": truth})
    score = np.clip(truth * 0.3 + rng.random(rows) * 0.7, 0, 1)
    return answers, pd.DataFrame({"id": ids, "target": score})


def _petfinder(rng: np.random.Generator, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = _hex_ids(rng, rows)
    truth = rng.integers(1, 101, rows)
    answers = pd.DataFrame({"Id": ids, "Pawpularity": truth})
    guess = np.clip(truth + rng.normal(0, 15, rows), 1, 100)
    return answers, pd.DataFrame({"Id": ids, "Pawpularity": guess})


def _dogs_vs_cats(rng: np.random.Generator, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = np.arange(1, rows + 1)
    truth = rng.integers(0, 2, rows)
    answers = pd.DataFrame({"id": ids, "label": truth})
    proba = np.clip(truth * 0.6 + rng.random(rows) * 0.4, 0.001, 0.999)
    return answers, pd.DataFrame({"id": ids, "label": proba})


FAMILIES = {
    "accuracy": Family("spaceship-titanic", "accuracy", "PassengerId", "Transported", _spaceship),
    "auc": Family("tabular-playground-series-may-2022", "auc-roc", "id", "target", _tps_may),
    "rmse": Family("petfinder-pawpularity-score", "rmse", "Id", "Pawpularity", _petfinder),
    "log-loss": Family("dogs-vs-cats-redux-kernels-edition", "log-loss", "id", "label",
                       _dogs_vs_cats),
}  # fmt: skip


def make_competition(root: Path, family: Family, rows: int) -> tuple[Path, bytes]:
    answers, submission = family.make(np.random.default_rng(0), rows)
    folder = root / f"{family.competition}-{rows}"
    (folder / "public").mkdir(parents=True)
    (folder / "private").mkdir()
    answers.to_csv(folder / "private" / "test.csv", index=False)
    submission.head(5).to_csv(folder / "public" / "sample_submission.csv", index=False)
    (folder / "description.md").write_text("# Bench\n")
    scores = np.linspace(0.99, 0.5, 500)
    pd.DataFrame({"score": scores}).to_csv(folder / "leaderboard.csv", index=False)
    (folder / "competition.yaml").write_text(
        f"id: {family.competition}\nname: Bench\nmetric: {{name: {family.metric}}}\n"
        f"id_columns: [{family.id_column}]\ntarget_columns: [{family.target}]\n"
        "answers: test.csv\nsample_submission: sample_submission.csv\ncategory: Tabular\n"
        "complexity: low\nawards_medals: true\n"
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


def rss_mb(pid: int, field: str = "VmHWM:") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def grade_requests(competition: str, data: bytes, kind=pb.GradeSubmissionRequest):
    yield kind(header=pb.SubmissionHeader(competition_id=competition, size_bytes=len(data)))
    for offset in range(0, len(data), CHUNK):
        yield kind(chunk=data[offset : offset + CHUNK])


async def concurrent_validations(
    address: str, token: str, competition: str, data: bytes, n: int
) -> dict:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        meta = (("authorization", f"Bearer {token}"),)

        async def one() -> float:
            started = time.perf_counter()
            reply = await stub.ValidateSubmission(
                grade_requests(competition, data, pb.ValidateSubmissionRequest), metadata=meta
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


def parse_times(submission: bytes, repeats: int) -> dict:
    """The baselines: pyarrow's own parse (its defaults, threads on) and MLE-bench's reader."""
    return {
        "pyarrow_parse_s": median_time(lambda: pa_csv.read_csv(io.BytesIO(submission)), repeats),
        "pandas_parse_s": median_time(
            lambda: pd.read_csv(io.BytesIO(submission), float_precision="round_trip"), repeats
        ),
        "read_submission_s": median_time(lambda: read_submission(io.BytesIO(submission)), repeats),
    }


def bench_family(family: Family, rows: int, repeats: int, root: Path, concurrent: bool) -> dict:
    competition = family.competition
    data_root = root / f"run-{competition}-{rows}"
    settings = Settings(
        data_dir=data_root / "data",
        database_url=f"sqlite:///{data_root / 'mleb.db'}",
        auth_secret=SECRET,
    )
    folder, submission = make_competition(root, family, rows)
    core = RegistryCore.from_settings(settings)
    import_competition(CompetitionInstaller(core.sessions, core.storage), folder)
    core.close()
    token = TokenAuthority.from_spec(SECRET).issue(Role.LAB, "bench")
    registry = spawn_server("registry", settings_env(settings))
    grader = spawn_server("grader", settings_env(replace(settings, registry_addr=registry.address)))
    try:
        idle_rss = rss_mb(grader.process.pid, "VmRSS:")
        answers = folder / "private" / "test.csv"
        parsing = parse_times(submission, repeats)

        def in_process(provider):
            return GraderCore(provider).grade(competition, io.BytesIO(submission), "s.csv")

        async def in_process_times() -> tuple[float | None, float, float]:
            cached_provider = LocalBundleProvider(competition, answers)
            score = (await in_process(cached_provider)).score
            cached = await median_time_async(lambda: in_process(cached_provider), repeats)
            cold = await median_time_async(
                lambda: in_process(LocalBundleProvider(competition, answers)), min(repeats, 3)
            )
            return score, cached, cold

        score, cached, cold = asyncio.run(in_process_times())
        assert score is not None
        with grpc.insecure_channel(grader.address) as channel:
            stub = grader_service_pb2_grpc.GraderServiceStub(channel)
            meta = (("authorization", f"Bearer {token}"),)
            remote_score = stub.GradeSubmission(
                grade_requests(competition, submission), metadata=meta
            ).report.score
            remote = median_time(
                lambda: stub.GradeSubmission(
                    grade_requests(competition, submission), metadata=meta
                ),
                repeats,
            )
        assert remote_score == score, (remote_score, score)
        return {
            "family": family.metric,
            "competition": competition,
            "rows": rows,
            "score": score,
            "submission_mb": len(submission) / 1e6,
            **parsing,
            "in_process_cached_s": cached,
            "in_process_cold_s": cold,
            "grpc_cached_s": remote,
            "cached_over_pyarrow": cached / parsing["pyarrow_parse_s"],
            "grpc_over_in_process": remote / cached,
            "grader_idle_rss_mb": idle_rss,
            "grader_peak_rss_mb": rss_mb(grader.process.pid),
            "concurrent_validate_32": (
                asyncio.run(
                    concurrent_validations(grader.address, token, competition, submission, 32)
                )
                if concurrent
                else None
            ),
        }
    finally:
        grader.kill()
        registry.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            for rows in args.rows:
                concurrent = name == "accuracy" and rows <= 100_000
                results.append(
                    bench_family(FAMILIES[name], rows, args.repeats, Path(tmp), concurrent)
                )
                print(json.dumps(results[-1]), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
