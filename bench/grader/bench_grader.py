"""Grader benchmark, per metric family: cached grading against pyarrow's parse of the same
submission, gRPC against in-process, the same grade with the metric's fast path switched off
(scikit-learn alone), cold answers, peak memory, and 32 concurrent validations.
Prints one JSON line per run, then all of them; see docs/benchmarks.md.

    PYTHONPATH=. .venv/bin/python bench/grader/bench_grader.py [--rows 100000 1000000] \
        [--families accuracy auc rmse log-loss] [--repeats 7] [--baseline-checkout DIR]

Servers run as separate processes (`mleb serve`), as in production; the client is this
process. The timed calls (parses, in-process grades, gRPC grades) take turns, one of each per
round, so that all of them see the same load on a shared machine; every figure is a median
over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

import grpc
import numpy as np
import pandas as pd
import pyarrow.csv as pa_csv
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc
from mleb.reports import CompetitionReport

from services.common.auth import Role, TokenAuthority
from services.common.settings import Settings
from services.grader.bundles import LocalBundleProvider
from services.grader.competitions import get_spec
from services.grader.core import GraderCore
from services.grader.metrics import auc, classification
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
    # The metric's fast path, as (module, function): switched off (made to decline every
    # input), the grade is scikit-learn's alone, i.e. the code before the fast path.
    fast_path: tuple[object, str] | None = None


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
    "auc": Family("tabular-playground-series-may-2022", "auc-roc", "id", "target", _tps_may,
                  (auc, "_binary_roc_auc")),
    "rmse": Family("petfinder-pawpularity-score", "rmse", "Id", "Pawpularity", _petfinder),
    "log-loss": Family("dogs-vs-cats-redux-kernels-edition", "log-loss", "id", "label",
                       _dogs_vs_cats, (classification, "_binary_true_class")),
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


async def median_times(calls: Mapping[str, Callable[[], Awaitable[object]]], rounds: int) -> dict:
    """Each call once per round, in turn, so that all of them see the same load; the median
    of each. Each round starts one call further on, so that none always follows the same one.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(rounds):
        for i in range(len(names)):
            name = names[(round_ + i) % len(names)]
            started = time.perf_counter()
            await calls[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


async def median_time(call: Callable[[], Awaitable[object]], rounds: int) -> float:
    return (await median_times({"call": call}, rounds))["call"]


def timed_sync(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return fn()

    return call


def without_fast_path(family: Family) -> contextlib.AbstractContextManager:
    if family.fast_path is None:
        return contextlib.nullcontext()
    module, name = family.fast_path
    return mock.patch.object(module, name, lambda *args: None)


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


def parse_calls(
    submission: bytes, arrow_text: tuple[str, ...]
) -> dict[str, Callable[[], Awaitable[object]]]:
    """The baselines: pyarrow's own parse (its defaults, threads on) and MLE-bench's reader,
    and our reader as the grade calls it (text ids kept as Arrow strings where the spec asks)."""
    return {
        "pyarrow_parse_s": timed_sync(lambda: pa_csv.read_csv(io.BytesIO(submission))),
        "pandas_parse_s": timed_sync(
            lambda: pd.read_csv(io.BytesIO(submission), float_precision="round_trip")
        ),
        "read_submission_s": timed_sync(
            lambda: read_submission(io.BytesIO(submission), arrow_text)
        ),
    }


async def grading_times(
    family: Family,
    answers: Path,
    submission: bytes,
    addresses: dict[str, str],
    token: str,
    repeats: int,
    sinks: dict[str, str],
) -> dict:
    """Scores (checked equal on every path) and the medians of every timed call;
    `addresses` names each grader server (this checkout's is "grpc"), `sinks` each
    grpc_sink.py's: the same stream sent to them gives the floors."""
    competition = family.competition
    cached_provider = LocalBundleProvider(competition, answers)
    spec = get_spec(competition)
    assert spec is not None

    async def in_process(provider: LocalBundleProvider = cached_provider) -> CompetitionReport:
        return await GraderCore(provider).grade(competition, io.BytesIO(submission), "s.csv")

    async def scikit_learn_alone() -> CompetitionReport:
        with without_fast_path(family):
            return await in_process()

    meta = (("authorization", f"Bearer {token}"),)

    def remote(channel: grpc.aio.Channel) -> Callable[[], Awaitable[pb.GradeSubmissionResponse]]:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        return lambda: stub.GradeSubmission(grade_requests(competition, submission), metadata=meta)

    async with contextlib.AsyncExitStack() as stack:
        remotes = {
            name: remote(await stack.enter_async_context(grpc.aio.insecure_channel(address)))
            for name, address in addresses.items()
        }
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            **parse_calls(submission, spec.arrow_text_columns),
            "in_process_cached_s": in_process,
            **{f"{name}_cached_s": call for name, call in remotes.items()},
            **{
                f"{name}_s": remote(await stack.enter_async_context(grpc.aio.insecure_channel(a)))
                for name, a in sinks.items()
            },
        }
        if family.fast_path is not None:
            calls["in_process_scikit_learn_s"] = scikit_learn_alone
        # One untimed call of each: caches, the grader's bundle, the channel. The scores of
        # every path must agree.
        scores = {"in_process": (await in_process()).score}
        for name, call in remotes.items():
            scores[name] = (await call()).report.score
        if family.fast_path is not None:
            scores["scikit_learn"] = (await scikit_learn_alone()).score
        assert scores["in_process"] is not None
        assert len(set(scores.values())) == 1, scores
        medians = await median_times(calls, repeats)
    cold = await median_times(
        {"in_process_cold_s": lambda: in_process(LocalBundleProvider(competition, answers))},
        min(repeats, 3),
    )
    return {"score": scores["in_process"], **medians, **cold}


@contextlib.contextmanager
def grpc_sink(*args: str) -> Iterator[str]:
    """The address of grpc_sink.py, run with `args` as a child process for the bench's
    duration."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("grpc_sink.py")), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield f"127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.kill()
        process.wait()


def spawn_grader(settings: Settings, checkout: Path | None = None):
    """`mleb serve grader`, from this checkout or, for a before/after in one run, another
    (a git worktree of an earlier commit, say)."""
    env = settings_env(settings)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    return spawn_server("grader", env, cwd=checkout)


def bench_family(
    family: Family, rows: int, repeats: int, root: Path, concurrent: bool, baseline: Path | None
) -> dict:
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
    grader_settings = replace(settings, registry_addr=registry.address)
    grader = spawn_grader(grader_settings)
    before = spawn_grader(grader_settings, baseline) if baseline is not None else None
    addresses = {"grpc": grader.address}
    if before is not None:
        addresses["grpc_baseline"] = before.address
    try:
        idle_rss = rss_mb(grader.process.pid, "VmRSS:")
        answers = folder / "private" / "test.csv"
        submission_file = root / f"submission-{competition}-{rows}.csv"
        submission_file.write_bytes(submission)
        ahead = ("--grade-ahead", competition, str(answers), str(submission_file))
        with grpc_sink() as sink, grpc_sink(*ahead) as grade_ahead:
            sinks = {"grpc_sink": sink, "grpc_grade_ahead": grade_ahead}
            times = asyncio.run(
                grading_times(family, answers, submission, addresses, token, repeats, sinks)
            )
        pyarrow = times["pyarrow_parse_s"]
        scikit_learn = times.get("in_process_scikit_learn_s")
        return {
            "family": family.metric,
            "competition": competition,
            "rows": rows,
            "submission_mb": len(submission) / 1e6,
            "load_average": os.getloadavg(),
            **times,
            "cached_over_pyarrow": times["in_process_cached_s"] / pyarrow,
            "scikit_learn_alone_over_pyarrow": scikit_learn and scikit_learn / pyarrow,
            "read_submission_over_pyarrow": times["read_submission_s"] / pyarrow,
            "grpc_over_in_process": times["grpc_cached_s"] / times["in_process_cached_s"],
            # What gRPC alone adds to the in-process grade: the floor for the ratio above.
            "in_process_plus_sink_over_in_process": (
                times["in_process_cached_s"] + times["grpc_sink_s"]
            )
            / times["in_process_cached_s"],
            # The whole grade overlapped with the whole transfer: the floor for any server
            # that grades while the bytes arrive.
            "grade_ahead_over_in_process": times["grpc_grade_ahead_s"]
            / times["in_process_cached_s"],
            "baseline_grpc_over_in_process": (
                times["grpc_baseline_cached_s"] / times["in_process_cached_s"]
                if before is not None
                else None
            ),
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
        if before is not None:
            before.kill()
        registry.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--repeats", type=int, default=7, help="rounds; medians of these")
    parser.add_argument(
        "--baseline-checkout",
        type=Path,
        help="another checkout whose grader is timed in the same rounds (before/after)",
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            for rows in args.rows:
                concurrent = name == "accuracy" and rows <= 100_000
                results.append(
                    bench_family(
                        FAMILIES[name],
                        rows,
                        args.repeats,
                        Path(tmp),
                        concurrent,
                        args.baseline_checkout,
                    )
                )
                print(json.dumps(results[-1]), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
