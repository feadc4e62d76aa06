"""What a run group does: the launch settings, the plan, and the sandbox request each run
makes. Plain values and checks, so `mleb run` can refuse a bad plan before it starts anything."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2

from mleb.client import AsyncClient
from mleb.errors import NotFound
from mleb.lab.records import Budget, GroupMetadata, RunRecord
from mleb.registry.v1 import registry_pb2
from mleb.sandbox.v1 import sandbox_pb2
from mleb.sandbox.v1 import sandbox_service_pb2 as sandbox_pb
from mleb.splits import canonical_split

DEFAULT_MAX_RETRIES = 2
RUN_GROUP_LABEL = "mleb.run_group"
RUN_ID_LABEL = "mleb.run_id"
SEED_LABEL = "mleb.seed"
SEED_ENV = "MLEB_SEED"
# The MLE-bench splits, and the demo's own competitions.
SPLITS = ("low", "medium", "high", "all", "builtin")


class PlanError(Exception):
    """`mleb run` was asked for something it cannot do; the message says what and why."""


@dataclass(frozen=True)
class AgentLaunch:
    """What every sandbox of the group is created with, beyond the budget."""

    image: str
    command: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    # Values live only in memory: a resume must be given them again.
    secret_env: dict[str, str] = field(default_factory=dict, compare=False)
    secret_env_names: tuple[str, ...] = ()
    mlebench_compat: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": list(self.command),
            "env": dict(self.env),
            "secret_env_names": sorted(self.secret_env_names),
        }


@dataclass(frozen=True)
class RunPlan:
    launch: AgentLaunch
    budget: Budget
    competition_set: str
    competition_ids: tuple[str, ...]
    seeds: int
    concurrency: int = 1
    max_retries: int = DEFAULT_MAX_RETRIES

    def pairs(self) -> list[tuple[str, int]]:
        """Seed-major, so a complete seed is ready early."""
        return [(c, s) for s in range(self.seeds) for c in self.competition_ids]


def parse_network(value: str) -> sandbox_pb2.NetworkPolicy:
    """`none`, `internet` or `allowlist:host1,host2[:port]`."""
    mode, _, hosts = value.strip().partition(":")
    if mode == "none" and not hosts:
        return sandbox_pb2.NetworkPolicy(mode=sandbox_pb2.NETWORK_MODE_NONE)
    if mode == "internet" and not hosts:
        return sandbox_pb2.NetworkPolicy(mode=sandbox_pb2.NETWORK_MODE_INTERNET)
    allowed = [h.strip() for h in hosts.split(",") if h.strip()]
    if mode == "allowlist" and allowed:
        return sandbox_pb2.NetworkPolicy(
            mode=sandbox_pb2.NETWORK_MODE_ALLOWLIST, allowed_hosts=allowed
        )
    raise PlanError(f"--network {value!r}: expected none, internet or allowlist:HOST[,HOST...]")


def read_competition_file(path: Path) -> tuple[str, ...]:
    """One competition id a line; blank lines and `#` comments are skipped, repeats dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PlanError(f"--competitions {path}: cannot read ({exc.strerror or exc})") from exc
    ids = [line.split("#", 1)[0].strip() for line in lines]
    found = tuple(dict.fromkeys(i for i in ids if i))
    if not found:
        raise PlanError(f"--competitions {path}: the file names no competition")
    return found


async def resolve_competitions(client: AsyncClient, spec: str) -> tuple[str, ...]:
    """A split name (low, lite, medium, high, all, builtin) through the registry's ListSplits,
    or a file of ids; every id must be known to the registry and have prepared data."""
    name = canonical_split(spec)
    if name in SPLITS:
        splits = {s.name: tuple(s.competition_ids) for s in (await client.list_splits()).splits}
        if not splits.get(name):
            raise PlanError(f"the registry has no competitions in split {name!r}")
        ids = splits[name]
    elif Path(spec).is_file():
        ids = read_competition_file(Path(spec))
    else:
        raise PlanError(
            f"--competitions {spec!r} is neither a split (low, lite, medium, high, all, builtin) "
            "nor a file of competition ids"
        )

    async def problem(competition_id: str) -> str:
        try:
            # Metadata only: a listing of 200,000 files is over a client's reply limit.
            reply = await client.get_competition(competition_id, omit_public_files=True)
            competition = reply.competition
        except NotFound:
            return f"{competition_id} (unknown to the registry)"
        if competition.data_status != registry_pb2.DATA_STATUS_PREPARED:
            return f"{competition_id} (no prepared data)"
        return ""

    problems = [p for p in await asyncio.gather(*map(problem, ids)) if p]
    if problems:
        raise PlanError(f"cannot run {len(problems)} competition(s): {', '.join(problems)}")
    return ids


def idempotency_key(group: str, competition_id: str, seed: int, attempt: int) -> str:
    return f"mleb-run/{group}/{competition_id}/{seed}/{attempt}"


def create_request(
    plan: RunPlan, group: str, record: RunRecord, attempt: int
) -> sandbox_pb.CreateSandboxRequest:
    launch, budget = plan.launch, plan.budget
    time_limit = duration_pb2.Duration()
    time_limit.FromNanoseconds(int(budget.time_limit_s * 1e9))
    return sandbox_pb.CreateSandboxRequest(
        competition_id=record.competition_id,
        image=launch.image,
        command=list(launch.command),
        env={**launch.env, SEED_ENV: str(record.seed)},
        secret_env=launch.secret_env,
        resources=sandbox_pb2.Resources(
            cpus=budget.cpus, memory_bytes=budget.memory_bytes, gpu_count=budget.gpus
        ),
        time_limit=time_limit,
        network=parse_network(budget.network),
        labels={RUN_GROUP_LABEL: group, RUN_ID_LABEL: record.run_id, SEED_LABEL: str(record.seed)},
        idempotency_key=idempotency_key(group, record.competition_id, record.seed, attempt),
        wait_for_gpus=True,
        mlebench_compat=launch.mlebench_compat,
    )


def plan_of(metadata: GroupMetadata, launch: AgentLaunch) -> RunPlan:
    assert metadata.budget is not None
    return RunPlan(
        launch=launch,
        budget=metadata.budget,
        competition_set=metadata.competition_set,
        competition_ids=metadata.competition_ids,
        seeds=metadata.seeds,
        concurrency=metadata.concurrency,
        max_retries=metadata.max_infrastructure_retries,
    )


def plan_differences(stored: RunPlan, asked: RunPlan) -> list[str]:
    """What a resume may not change: everything that decides what each run is."""
    checks = {
        "--agent": (stored.launch.image, asked.launch.image),
        "--command": (stored.launch.command, asked.launch.command),
        "--env": (stored.launch.env, asked.launch.env),
        "--secret-env names": (
            sorted(stored.launch.secret_env_names),
            sorted(asked.launch.secret_env_names),
        ),
        "--mlebench-compat": (stored.launch.mlebench_compat, asked.launch.mlebench_compat),
        "--competitions": (stored.competition_ids, asked.competition_ids),
        "--seeds": (stored.seeds, asked.seeds),
        "budget (--time-limit, --gpus-per-run, --cpus, --memory, --network)": (
            stored.budget,
            asked.budget,
        ),
    }
    return [name for name, (before, now) in checks.items() if before != now]
