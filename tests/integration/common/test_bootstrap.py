"""The shared bootstrap through real channels: health, reflection, metrics, errors, TLS, SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from mleb.grader.v1 import grader_service_pb2, grader_service_pb2_grpc

from services.common.auth import Role
from services.common.settings import TlsSettings
from services.grader.app import grader_service
from tests.conftest import bearer
from tests.fixtures.processes import settings_env, spawn_server

GRADER = "mleb.grader.v1.GraderService"


async def test_health_reports_serving_then_not_serving_on_stop(serve, settings, channel_to):
    server = await serve([grader_service(settings)], settings)
    stub = health_pb2_grpc.HealthStub(channel_to(server))
    for service in ("", GRADER):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=GRADER))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.create_task(server.stop(grace=1.0))
    # The graceful stop announces NOT_SERVING before the server goes away.
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping


async def test_reflection_lists_and_describes_the_api(serve, settings, channel_to):
    server = await serve([grader_service(settings)], settings)
    stub = reflection_pb2_grpc.ServerReflectionStub(channel_to(server))
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=GRADER),
    ]
    responses = [r async for r in stub.ServerReflectionInfo(iter(requests))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {GRADER, "grpc.health.v1.Health"} <= names
    assert responses[1].file_descriptor_response.file_descriptor_proto


async def _grader_with_registry(serve, settings, **overrides):
    """A grader with the registry it reads the token revocation list from."""
    from services.registry.app import registry_service

    registry = await serve([registry_service(settings)], settings)
    settings = dataclasses.replace(
        settings, registry_addr=f"127.0.0.1:{registry.port}", **overrides
    )
    return await serve([grader_service(settings)], settings)


async def test_domain_errors_arrive_as_rich_status(serve, settings, channel_to, lab_token):
    server = await _grader_with_registry(serve, settings)
    stub = grader_service_pb2_grpc.GraderServiceStub(channel_to(server))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RankScore(grader_service_pb2.RankScoreRequest(), metadata=bearer(lab_token))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    kinds = {d.type_url.rsplit("/", 1)[-1]: d for d in status.details}
    bad_request = error_details_pb2.BadRequest()
    kinds["google.rpc.BadRequest"].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "competition_id"
    info = error_details_pb2.ErrorInfo()
    kinds["google.rpc.ErrorInfo"].Unpack(info)
    assert info.domain == "mleb" and info.metadata["request_id"]


async def test_missing_and_bad_tokens_are_unauthenticated_wrong_role_denied(
    serve, settings, channel_to, authority
):
    server = await serve([grader_service(settings)], settings)
    stub = grader_service_pb2_grpc.GraderServiceStub(channel_to(server))
    request = grader_service_pb2.RankScoreRequest(competition_id="c")
    sandbox = authority.issue(Role.SANDBOX, "agent", sandbox_id="s", competition_id="c")
    cases = [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        (bearer("garbage"), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Basic abc"),), grpc.StatusCode.UNAUTHENTICATED),
        (bearer(sandbox), grpc.StatusCode.PERMISSION_DENIED),
    ]
    for metadata, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RankScore(request, metadata=metadata)
        assert err.value.code() == code


async def test_auth_disabled_only_when_explicit(serve, settings, channel_to):
    server = await serve([grader_service(settings)], settings, auth_secret="", auth_disabled=True)
    stub = grader_service_pb2_grpc.GraderServiceStub(channel_to(server))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RankScore(grader_service_pb2.RankScoreRequest())
    # Past auth, into the servicer's own validation.
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(Exception, match="MLEB_AUTH_SECRET"):
        await serve([grader_service(settings)], settings, auth_secret="", auth_disabled=False)


async def test_metrics_count_rpcs_by_method_and_code(serve, settings, channel_to, lab_token):
    server = await _grader_with_registry(serve, settings, metrics_port=0)
    stub = grader_service_pb2_grpc.GraderServiceStub(channel_to(server))
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.RankScore(grader_service_pb2.RankScoreRequest(), metadata=bearer(lab_token))
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    line = re.search(
        r'mleb_rpc_requests_total\{code="INVALID_ARGUMENT",method="/mleb.grader.v1.GraderService/'
        r'RankScore"\} (\S+)',
        body,
    )
    assert line and float(line.group(1)) == 3.0
    assert "mleb_rpc_duration_seconds_bucket" in body


def _make_certs(directory: Path) -> tuple[Path, Path, Path]:
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "srv.key", directory / "srv.csr", directory / "srv.crt"
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca_crt), "-days", "1", "-subj", "/CN=mleb-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=localhost")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "1", "-extfile", str(ext))  # fmt: skip
    return ca_crt, crt, key


async def test_tls_server_accepts_tls_and_refuses_plaintext(serve, settings, tmp_path):
    ca, crt, key = _make_certs(tmp_path)
    server = await serve([grader_service(settings)], settings, tls=TlsSettings(crt, key))
    request = health_pb2.HealthCheckRequest()
    credentials = grpc.ssl_channel_credentials(ca.read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{server.port}", credentials) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_pb2_grpc.HealthStub(channel).Check(request, timeout=2)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_sigterm_stops_the_server_gracefully(settings):
    server = spawn_server("grader", settings_env(settings))
    try:
        with grpc.insecure_channel(server.address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert server.terminate() == 0
        events = [json.loads(line)["event"] for line in server.lines if line.startswith("{")]
        tail = [e for e in events if e in ("signal_received", "server_stopping", "server_stopped")]
        assert tail == ["signal_received", "server_stopping", "server_stopped"]
    finally:
        server.kill()
