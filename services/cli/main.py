"""The server's commands of `mleb` (serve, token, registry, competitions, sandboxes, grade,
demo, health). They join the lab's commands (mleb.lab.cli) through the "mleb.commands" entry
point; `python -m services.cli.main` runs the whole command without it being installed."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum

import typer
from mleb.errors import from_rpc_error
from mleb.lab.cli import build_app
from rich.console import Console

from services.cli import (
    builtin_cmds,
    demo_cmds,
    grade_cmds,
    registry_cmds,
    sandbox_cmds,
)
from services.cli.servers import SERVICE_BUILDERS, start_services
from services.common.auth import Role, TokenAuthority
from services.common.errors import MlebError
from services.common.logging import configure_logging
from services.common.server import run_until_signalled
from services.common.settings import DEFAULT_PORTS, Settings

# Merged into the `mleb` command at the top level (mleb.lab.cli.build_app).
app = typer.Typer()
token_app = typer.Typer(help="Mint auth tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
registry_cmds.registry_app.command("import-builtin")(builtin_cmds.import_builtin)
app.add_typer(registry_cmds.registry_app, name="registry")
app.add_typer(registry_cmds.competitions_app, name="competitions")
app.add_typer(sandbox_cmds.sandboxes_app, name="sandboxes")
app.command("grade-sample")(grade_cmds.grade_sample)
app.command("grade")(grade_cmds.grade)
app.command("demo")(demo_cmds.demo)
console = Console(stderr=True)


class ServiceName(StrEnum):
    registry = "registry"
    grader = "grader"
    sandbox = "sandbox"
    all = "all"


@app.command()
def serve(
    service: ServiceName = typer.Argument(..., help="Which service to run, or all of them."),
    port: int | None = typer.Option(None, help="Port (single service only)."),
) -> None:
    """Runs mleb server(s) until SIGTERM or Ctrl-C."""
    names = list(SERVICE_BUILDERS) if service is ServiceName.all else [service.value]
    ports = {service.value: port} if port is not None and len(names) == 1 else {}

    async def main(settings: Settings) -> None:
        running = await start_services(names, settings, ports)
        for name, server in running.items():
            console.print(f"[green]{name}[/green] listening on {settings.host}:{server.port}")
        await run_until_signalled(list(running.values()), settings.shutdown_grace_s)

    try:
        settings = Settings.from_env()
        # Before the services are built: what they log while starting is JSON on stderr too.
        configure_logging(settings.log_level)
        asyncio.run(main(settings))
    except MlebError as exc:  # a setting the operator gave is wrong: say which, no traceback
        console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


# Lab tokens expire unless asked not to; revoke one early with `mleb token revoke`.
DEFAULT_TTL_S = {Role.LAB: 7 * 24 * 3600.0, Role.SANDBOX: 24 * 3600.0}


@token_app.command("issue")
def issue_token(
    role: Role = typer.Option(..., help="service, lab or sandbox."),
    subject: str = typer.Option("cli", help="Who the token is for."),
    ttl: float | None = typer.Option(
        None, help="Lifetime in seconds (default: 7 days for lab, 1 day for sandbox tokens)."
    ),
    no_expiry: bool = typer.Option(False, "--no-expiry", help="Service tokens only: never expire."),
    sandbox_id: str = typer.Option("", help="Sandbox tokens: the sandbox."),
    competition_id: str = typer.Option("", help="Sandbox tokens: the competition."),
) -> None:
    """Prints a token signed with the first key of MLEB_AUTH_SECRET."""
    settings = Settings.from_env()
    if not settings.auth_secret:
        console.print("[red]MLEB_AUTH_SECRET is not set[/red]")
        raise typer.Exit(2)
    if no_expiry and (role is not Role.SERVICE or ttl is not None):
        console.print("[red]--no-expiry is for service tokens, without --ttl[/red]")
        raise typer.Exit(2)
    if ttl is not None and ttl <= 0:
        console.print("[red]--ttl must be positive[/red]")
        raise typer.Exit(2)
    lifetime = None if no_expiry else (ttl if ttl is not None else DEFAULT_TTL_S.get(role))
    authority = TokenAuthority.from_spec(settings.auth_secret)
    typer.echo(
        authority.issue(
            role, subject, ttl_s=lifetime, sandbox_id=sandbox_id, competition_id=competition_id
        )
    )


@token_app.command("revoke")
def revoke_token(
    token: str = typer.Argument("", help="The token to revoke (or use --token-id)."),
    token_id: str = typer.Option("", help="Revoke by token id (jti); service credentials."),
    sandbox_id: str = typer.Option("", help="Revoke every token of a sandbox."),
    reason: str = typer.Option("", help="Why, for the record."),
    registry: str = typer.Option(
        "", envvar="MLEB_REGISTRY_ADDR", help="Registry address (holds the revocation list)."
    ),
) -> None:
    """Revokes a token before it expires; servers refuse it within MLEB_REVOCATION_CACHE_S.

    Acts with a service token minted from MLEB_AUTH_SECRET when it is set, else with
    MLEB_TOKEN, which may revoke only its own lab's tokens."""
    import os

    import grpc
    from mleb.registry.v1 import registry_service_pb2, registry_service_pb2_grpc

    from services.common.channels import bearer_metadata, service_channel, service_token

    if sum(bool(x) for x in (token, token_id, sandbox_id)) != 1:
        console.print("[red]name exactly one of TOKEN, --token-id or --sandbox-id[/red]")
        raise typer.Exit(2)
    settings = Settings.from_env()
    credential = service_token(settings, "cli") or os.environ.get("MLEB_TOKEN", "")
    if not credential:
        console.print("[red]set MLEB_AUTH_SECRET (operator) or MLEB_TOKEN (lab)[/red]")
        raise typer.Exit(2)
    request = registry_service_pb2.RevokeTokenRequest(reason=reason)
    if token:
        request.token = token
    elif token_id:
        request.token_id = token_id
    else:
        request.sandbox_id = sandbox_id

    async def revoke() -> registry_service_pb2.RevokeTokenResponse:
        channel = service_channel(registry or settings.registry_addr, settings)
        try:
            stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
            return await stub.RevokeToken(request, metadata=bearer_metadata(credential), timeout=30)
        finally:
            await channel.close()

    try:
        reply = asyncio.run(revoke())
    except grpc.RpcError as error:
        refused = from_rpc_error(error)
        console.print(f"[red]{refused.code.name}: {refused.message}[/red]")
        raise typer.Exit(1) from None
    revoked = reply.revoked
    what = f"token {revoked.token_id}" if revoked.token_id else f"sandbox {revoked.sandbox_id}"
    until = revoked.expires_at.ToJsonString() if revoked.HasField("expires_at") else "forever"
    typer.echo(f"revoked {what} (kept until {until})")


@app.command()
def health(
    registry: str = typer.Option("", envvar="MLEB_REGISTRY_ADDR", help="Registry address."),
    grader: str = typer.Option("", envvar="MLEB_GRADER_ADDR", help="Grader address."),
    sandbox: str = typer.Option("", envvar="MLEB_SANDBOX_ADDR", help="Sandbox address."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Checks each service's health and lists what it serves, through reflection."""
    from services.cli.probe import probe

    targets = {
        "registry": registry or f"127.0.0.1:{DEFAULT_PORTS['registry']}",
        "grader": grader or f"127.0.0.1:{DEFAULT_PORTS['grader']}",
        "sandbox": sandbox or f"127.0.0.1:{DEFAULT_PORTS['sandbox']}",
    }
    results = {name: probe(address) for name, address in targets.items()}
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for name, result in results.items():
            colour = "green" if result["status"] == "SERVING" else "red"
            console.print(
                f"{name:9} {result['address']:22} [{colour}]{result['status']}[/{colour}]"
            )
            for service in result["services"]:
                console.print(f"          - {service}")
    if any(r["status"] != "SERVING" for r in results.values()):
        raise typer.Exit(1)


if __name__ == "__main__":
    build_app(app)()
