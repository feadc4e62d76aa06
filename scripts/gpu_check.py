#!/usr/bin/env python3
"""Checks a GPU machine end to end, as the sandbox service would use it:

1. the NVML inventory (services.sandbox.gpus.inventory) as JSON, cross-checked with `nvidia-smi`;
2. usage samples, also from many threads at once;
3. exclusive leases of the real GPUs (services.sandbox.gpus.leases) in a throwaway SQLite
   database: every GPU leased once, a further request refused, then racing transactions;
4. when PyTorch is installed: a worker given one GPU by UUID in CUDA_VISIBLE_DEVICES (as the
   local backend hands GPUs over) sees only that GPU, and samples show its load.

    python scripts/gpu_check.py [--node NAME] [--racers 20]

Needs only this repository, nvidia-ml-py, SQLAlchemy, alembic and structlog. Exits 1 when a
check fails, 2 when NVML finds no GPU. The output of a real run is recorded in docs/gpus.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common import db
from services.common.errors import ResourceExhaustedError
from services.sandbox.db import store
from services.sandbox.db.schema import SandboxRow
from services.sandbox.gpus import leases
from services.sandbox.gpus.inventory import GpuInventory, InventorySnapshot


class CheckFailed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    print(f"  [{'ok' if condition else 'FAILED'}] {what}")
    if not condition:
        raise CheckFailed(what)


def heading(text: str) -> None:
    print(f"\n== {text}")


def inventory_json(snapshot: InventorySnapshot) -> str:
    data = asdict(snapshot)
    for gpu, info in zip(data["gpus"], snapshot.gpus, strict=True):
        gpu["mig_devices"] = [device._asdict() for device in info.mig_devices]
    return json.dumps(data, indent=2)


def nvidia_smi_uuids() -> list[str] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def check_sampling(inventory: GpuInventory, uuids: list[str]) -> None:
    heading("usage samples")
    durations = []
    for _ in range(50):
        began = time.perf_counter()
        samples = inventory.sample(uuids)
        durations.append(time.perf_counter() - began)
    for uuid, (utilization, used) in samples.items():
        print(f"  {uuid}: {utilization}% busy, {used / 2**20:.0f} MiB used")
    check(sorted(samples) == sorted(uuids), "every GPU sampled")
    print(
        f"  one sample of {len(uuids)} GPU(s): median {statistics.median(durations) * 1e3:.3f} ms"
    )

    failures: list[BaseException] = []
    start = threading.Barrier(16)

    def hammer() -> None:
        try:
            start.wait()
            for _ in range(20):
                inventory.snapshot()
                inventory.sample(uuids)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check(not failures, f"16 threads x 20 snapshots and samples: {failures[:1] or 'no errors'}")


def sandbox_row(sandbox_id: str, node: str) -> SandboxRow:
    """A minimal sandbox record for a lease to point at (leases reference sandboxes)."""
    return SandboxRow(
        id=sandbox_id, competition_id="gpu-check", image="", image_digest="", command=[],
        env={}, secret_env_names=[], cpus=1.0, memory_bytes=0, shm_bytes=0, pids_limit=0,
        gpu_count=1, requested_gpu_uuids=[], time_limit_s=60.0, network_mode="none",
        allowed_hosts=[], description_variant="PLAIN", owner="gpu-check", idempotency_key=None,
        wait_for_gpus=False, mlebench_compat=False, backend="local", state="PENDING",
        failure_class="", failure_reason="", failure_message="", exit_code=None,
        created_at=datetime.now(UTC), stop_target="", stop_reason="", stop_grace_s=0.0,
        node=node, instance_id="gpu-check", backend_ref="", cpu_seconds=0.0,
        peak_memory_bytes=0, gpu_utilization_percent=0.0, peak_gpu_memory_bytes=0,
        artifacts_size_bytes=0, submission_collected=False, last_log_seq=0,
        last_output_time=0.0, layout_root="",
    )  # fmt: skip


def try_lease(sessions, node: str, sandbox_id: str, leasable, unhealthy, wanted=()) -> list[str]:
    """What the service does at create: choose and insert in one transaction, retried when
    another transaction took the chosen GPU first."""
    while True:
        try:
            with sessions.begin() as session:
                chosen = leases.choose(
                    node,
                    leasable,
                    unhealthy,
                    set(leases.holders(session, node)),
                    count=0 if wanted else 1,
                    wanted=list(wanted),
                )
                if chosen is None:
                    free = len(set(leasable) - set(leases.holders(session, node)))
                    raise leases.gpus_busy(node, len(wanted) or 1, free)
                leases.lease(session, node, sandbox_id, chosen)
                return chosen
        except leases.LeaseConflict:
            continue


def check_leasing(snapshot: InventorySnapshot, racers: int) -> None:
    node = snapshot.node
    # The service's rule (services/sandbox/gpus/leases.py): everything but "unhealthy" is leasable.
    leasable = [g.uuid for g in snapshot.gpus if g.uuid and g.health != "unhealthy"]
    unhealthy = [g.uuid for g in snapshot.gpus if g.health == "unhealthy"]
    heading(f"leasing on node {node}: {len(leasable)} leasable, {len(unhealthy)} held back")
    for uuid in unhealthy:
        print(f"  held back as unhealthy: {uuid or '(no UUID)'}")
    if not leasable:
        check(False, "at least one leasable GPU")
    with tempfile.TemporaryDirectory() as folder:
        engine = store.open_database(f"sqlite:///{folder}/gpu-check.db")
        sessions = db.create_session_factory(engine)
        ids = [f"sbx-gpu-check-{i:02d}" for i in range(len(leasable) + 1 + racers)]
        with sessions.begin() as session:
            for sandbox_id in ids:
                store.insert_sandbox(session, sandbox_row(sandbox_id, node), {})

        print("  leasing every GPU, one sandbox each:")
        owners = ids[: len(leasable)]
        for sandbox_id in owners:
            [uuid] = try_lease(sessions, node, sandbox_id, leasable, unhealthy)
            print(f"    {sandbox_id} <- {uuid}")
        with sessions() as session:
            held = leases.holders(session, node)
        check(sorted(held) == sorted(leasable), "each GPU held exactly once")

        extra = ids[len(leasable)]
        try:
            try_lease(sessions, node, extra, leasable, unhealthy)
            check(False, "a further request is refused")
        except ResourceExhaustedError as exc:
            check(True, f"a further request is refused: RESOURCE_EXHAUSTED {exc.message!r}")
        try:
            try_lease(sessions, node, extra, leasable, unhealthy, wanted=[leasable[0]])
            check(False, "asking for a held GPU by UUID is refused")
        except ResourceExhaustedError:
            check(True, f"asking for held {leasable[0]} by UUID is refused")

        print("  releasing them all:")
        for sandbox_id in owners:
            with sessions.begin() as session:
                print(f"    {sandbox_id} released {leases.release(session, sandbox_id)}")
        with sessions() as session:
            check(leases.holders(session, node) == {}, "no leases left")

        granted, refused = race(sessions, node, ids[-racers:], leasable, unhealthy)
        uuids = [uuid for got in granted.values() for uuid in got]
        print(f"  {racers} racing transactions: {len(granted)} granted, {refused} refused")
        for sandbox_id, got in sorted(granted.items()):
            print(f"    {sandbox_id} <- {got[0]}")
        wanted = min(racers, len(leasable))
        check(len(granted) == wanted and refused == racers - wanted, "winners = free GPUs")
        check(len(set(uuids)) == len(uuids), "no GPU granted twice")
        for sandbox_id in granted:
            with sessions.begin() as session:
                leases.release(session, sandbox_id)
        engine.dispose()


def race(sessions, node, sandbox_ids, leasable, unhealthy) -> tuple[dict[str, list[str]], int]:
    granted: dict[str, list[str]] = {}
    refused: list[str] = []
    start = threading.Barrier(len(sandbox_ids))

    def take(sandbox_id: str) -> None:
        start.wait()
        try:
            granted[sandbox_id] = try_lease(sessions, node, sandbox_id, leasable, unhealthy)
        except ResourceExhaustedError:
            refused.append(sandbox_id)

    threads = [threading.Thread(target=take, args=(i,)) for i in sandbox_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return granted, len(refused)


# Holds 6 GiB and multiplies matrices for 8 s on the one GPU it is given.
LOAD = """
import time, torch
x = torch.randn(8192, 8192, device="cuda")
held = torch.empty(6 << 30, dtype=torch.uint8, device="cuda")
print(torch.cuda.device_count(), torch.cuda.get_device_name(0), flush=True)
end = time.time() + 8
while time.time() < end:
    x @ x
torch.cuda.synchronize()
"""


def check_handover(inventory: GpuInventory, uuid: str) -> None:
    heading("handover by UUID, under load")
    if importlib.util.find_spec("torch") is None:
        print("  PyTorch not installed; skipped")
        return
    before = inventory.sample([uuid])[uuid]
    print(f"  idle: {before[0]}% busy, {before[1] / 2**20:.0f} MiB used")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": uuid}
    worker = subprocess.Popen(
        [sys.executable, "-c", LOAD], env=env, stdout=subprocess.PIPE, text=True
    )
    seen = worker.stdout.readline().strip() if worker.stdout else ""
    check(seen.startswith("1 "), f"a worker with CUDA_VISIBLE_DEVICES={uuid} sees: {seen!r}")
    samples = []
    for _ in range(8):
        time.sleep(0.5)
        samples.append(inventory.sample([uuid])[uuid])
        print(f"  under load: {samples[-1][0]}% busy, {samples[-1][1] / 2**20:.0f} MiB used")
    worker.wait()
    check(max(u for u, _ in samples) > 0, "the samples show the load")
    check(max(m for _, m in samples) >= before[1] + (6 << 30), "and the memory it holds")
    stranger = "GPU-00000000-0000-0000-0000-000000000000"
    count = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": stranger},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    check(count == "0", f"a process given a UUID not on this node sees {count} GPU(s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", default=socket.gethostname())
    parser.add_argument("--racers", type=int, default=20)
    args = parser.parse_args()

    print(f"gpu_check on {args.node}, nvidia-ml-py {metadata.version('nvidia-ml-py')}")
    inventory = GpuInventory(args.node)
    snapshot = inventory.snapshot()
    heading("inventory (ListGpus)")
    print(inventory_json(snapshot))
    if not snapshot.nvml_available or not snapshot.gpus:
        print("\nNVML finds no GPU here: nothing to lease.")
        return 2
    try:
        heading("cross-check")
        smi = nvidia_smi_uuids()
        if smi is None:
            print("  nvidia-smi not installed; skipped")
        else:
            check(smi == [g.uuid for g in snapshot.gpus], f"nvidia-smi lists the same UUIDs {smi}")
        check_sampling(inventory, [g.uuid for g in snapshot.gpus if g.uuid])
        check_leasing(snapshot, args.racers)
        check_handover(inventory, next(g.uuid for g in snapshot.gpus if g.uuid))
    except CheckFailed as exc:
        print(f"\nFAILED: {exc}")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
