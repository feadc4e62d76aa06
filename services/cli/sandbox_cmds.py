"""`mleb sandboxes ...`: inspect and steer a running sandbox service over gRPC, and clean up
old artifacts straight in the database and data dir (on the service's host)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from google.protobuf import duration_pb2
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2, sandbox_service_pb2_grpc
from rich.console import Console
from rich.table import Table

from services.cli.connect import bearer, channel_to
from services.common import db
from services.common.errors import MlebError
from services.common.settings import DEFAULT_PORTS, Settings
from services.sandbox.db import store
from services.sandbox.node import artifacts
from services.sandbox.node.stored_artifacts import forget_archives
from services.storage.config import StoreSettings, open_store

sandboxes_app = typer.Typer(help="Inspect and stop sandboxes.", no_args_is_help=True)
artifacts_app = typer.Typer(help="A sandbox's collected outputs.", no_args_is_help=True)
sandboxes_app.add_typer(artifacts_app, name="artifacts")
console = Console()
errors = Console(stderr=True)

_SANDBOX = typer.Option(
    f"127.0.0.1:{DEFAULT_PORTS['sandbox']}", envvar="MLEB_SANDBOX_ADDR", help="host:port"
)
_TOKEN = typer.Option("", envvar="MLEB_TOKEN", help="Bearer token.", show_default=False)
_STATE_NAMES = {
    value: name.removeprefix("SANDBOX_STATE_") for name, value in sandbox_pb2.SandboxState.items()
}
_STATE_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "TIMED_OUT": "yellow", "RUNNING": "cyan"}
_STREAM_NAMES = {
    sandbox_pb2.LOG_STREAM_STDOUT: "out",
    sandbox_pb2.LOG_STREAM_STDERR: "err",
    sandbox_pb2.LOG_STREAM_SYSTEM: "sys",
}


@contextmanager
def _stub(address: str) -> Iterator[sandbox_service_pb2_grpc.SandboxServiceStub]:
    with channel_to(address) as channel:
        yield sandbox_service_pb2_grpc.SandboxServiceStub(channel)


def _state(sandbox: sandbox_pb2.Sandbox) -> str:
    name = _STATE_NAMES.get(sandbox.state, "?")
    style = _STATE_STYLE.get(name, "white")
    return f"[{style}]{name}[/{style}]"


def _parse_labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: labels look like key=value")
        labels[key] = value
    return labels


@sandboxes_app.command("list")
def list_command(
    label: list[str] = typer.Option([], "--label", help="key=value; repeat, all must match."),
    state: list[str] = typer.Option([], "--state", help="PENDING, RUNNING, ...; repeat."),
    owner: str = typer.Option("", help="Only this owner's sandboxes."),
    competition: str = typer.Option("", help="Only this competition."),
    limit: int = typer.Option(100, help="Show at most this many."),
    sandbox: str = _SANDBOX,
    token: str = _TOKEN,
) -> None:
    """Lists sandboxes, newest first."""
    try:
        states = [sandbox_pb2.SandboxState.Value(f"SANDBOX_STATE_{s.upper()}") for s in state]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    table = Table("id", "state", "competition", "owner", "created", "exit", "labels")
    shown, page_token = 0, ""
    with _stub(sandbox) as stub:
        while shown < limit:
            reply = stub.ListSandboxes(
                sandbox_service_pb2.ListSandboxesRequest(
                    labels=_parse_labels(label),
                    states=states,
                    owner=owner,
                    competition_id=competition,
                    page_size=min(limit - shown, 1000),
                    page_token=page_token,
                ),
                metadata=bearer(token),
            )
            for item in reply.sandboxes:
                table.add_row(
                    item.id,
                    _state(item),
                    item.competition_id,
                    item.owner,
                    item.created_at.ToDatetime().isoformat(timespec="seconds"),
                    str(item.exit_code) if item.HasField("exit_code") else "",
                    ",".join(f"{k}={v}" for k, v in sorted(item.labels.items())),
                )
                shown += 1
            page_token = reply.next_page_token
            if not page_token:
                break
    console.print(table)


def _failure(item: sandbox_pb2.Sandbox) -> str:
    parts = [item.failure_message]
    if item.failure_reason:
        parts.insert(0, sandbox_pb2.FailureReason.Name(item.failure_reason))
    if item.failure_class:
        parts.insert(0, sandbox_pb2.FailureClass.Name(item.failure_class))
    return " ".join(filter(None, parts))


@sandboxes_app.command("show")
def show_command(sandbox_id: str, sandbox: str = _SANDBOX, token: str = _TOKEN) -> None:
    """Shows one sandbox's record."""
    with _stub(sandbox) as stub:
        item = stub.GetSandbox(
            sandbox_service_pb2.GetSandboxRequest(sandbox_id=sandbox_id), metadata=bearer(token)
        ).sandbox
    rows = [
        ("state", _state(item)),
        ("competition", item.competition_id),
        ("image", f"{item.image} {item.image_digest}".strip()),
        ("owner", item.owner),
        ("node / backend", f"{item.node} / {sandbox_pb2.Backend.Name(item.backend)}"),
        ("exit code", str(item.exit_code) if item.HasField("exit_code") else ""),
        ("failure", _failure(item)),
        ("secret env", ", ".join(item.secret_env_names)),
        ("GPUs", ", ".join(item.leased_gpu_uuids)),
        ("cpu seconds", f"{item.usage.cpu_seconds:.1f}"),
        ("peak memory", f"{item.usage.peak_memory_bytes:,} bytes"),
        ("submission", "collected" if item.submission_collected else "none"),
        ("log entries", str(item.last_log_seq)),
    ]
    for name, value in rows:
        console.print(f"[bold]{name:15}[/bold] {value}", highlight=False)


@sandboxes_app.command("logs")
def logs_command(
    sandbox_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming until it ends."),
    after: int = typer.Option(0, help="Resume after this sequence number."),
    sandbox: str = _SANDBOX,
    token: str = _TOKEN,
) -> None:
    """Prints log entries as `seq stream text`; resume a cut stream with --after."""
    request = sandbox_service_pb2.StreamLogsRequest(
        sandbox_id=sandbox_id, after_seq=after, follow=follow
    )
    with _stub(sandbox) as stub:
        for reply in stub.StreamLogs(request, metadata=bearer(token)):
            for entry in reply.entries:
                typer.echo(f"{entry.seq} {_STREAM_NAMES.get(entry.stream, '?')} {entry.text}")


@sandboxes_app.command("stop")
def stop_command(
    sandbox_id: str,
    grace: float = typer.Option(0.0, help="Seconds between SIGTERM and SIGKILL; 0: default."),
    reason: str = typer.Option("", help="Recorded with the sandbox."),
    sandbox: str = _SANDBOX,
    token: str = _TOKEN,
) -> None:
    """Stops a sandbox gracefully, then kills it after the grace period."""
    grace_period = duration_pb2.Duration()
    grace_period.FromNanoseconds(int(grace * 1e9))
    with _stub(sandbox) as stub:
        item = stub.StopSandbox(
            sandbox_service_pb2.StopSandboxRequest(
                sandbox_id=sandbox_id, grace_period=grace_period, reason=reason
            ),
            metadata=bearer(token),
        ).sandbox
    console.print(f"{item.id} {_state(item)}")


@artifacts_app.command("download")
def download_command(
    sandbox_id: str,
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the .tar file."),
    sandbox: str = _SANDBOX,
    token: str = _TOKEN,
) -> None:
    """Downloads /home/submission, /home/logs and /home/code as a tar archive, verified."""
    digest, size, expected = hashlib.sha256(), 0, None
    partial = output.with_name(output.name + ".partial")
    with _stub(sandbox) as stub, partial.open("wb") as handle:
        request = sandbox_service_pb2.DownloadArtifactsRequest(sandbox_id=sandbox_id)
        for reply in stub.DownloadArtifacts(request, metadata=bearer(token)):
            if expected is None:
                expected = (reply.total_size_bytes, reply.sha256)
            handle.write(reply.data)
            digest.update(reply.data)
            size += len(reply.data)
    if expected != (size, digest.hexdigest()):
        partial.unlink(missing_ok=True)
        errors.print("[red]the download did not match its size and sha256[/red]")
        raise typer.Exit(1)
    partial.replace(output)
    console.print(f"{output} ({size:,} bytes, sha256 {digest.hexdigest()})")


@sandboxes_app.command("cleanup")
def cleanup_command(
    older_than: float = typer.Option(
        ..., "--older-than", help="Delete artifacts of sandboxes that ended this many hours ago."
    ),
) -> None:
    """Operator only: opens the sandbox database (MLEB_DATABASE_URL) and deletes old
    sandboxes' host folders, and their archives in MLEB_OBJECT_STORE if set (records and logs
    stay). Run on the service host."""
    settings = Settings.from_env()
    try:
        engine = store.open_database(settings.database_url)
        try:
            removed = artifacts.clean_expired(db.create_session_factory(engine), older_than * 3600)
            # With an object store (MLEB_OBJECT_STORE), the stored archives go too.
            if (stored := StoreSettings.from_env()) is not None:
                forget_archives(open_store(stored), removed)
        finally:
            engine.dispose()
    except MlebError as error:
        errors.print(f"[red]{error.code}:[/red] {error.message}", highlight=False)
        raise typer.Exit(1) from None
    for sandbox_id in removed:
        console.print(f"removed {sandbox_id}")
    console.print(f"{len(removed)} sandbox folder(s) removed")
