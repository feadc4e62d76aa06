"""Health and reflection probes, as a load balancer and grpcurl would make them."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def probe(address: str, timeout_s: float = 3.0) -> dict:
    result: dict = {"address": address, "status": "UNREACHABLE", "services": []}
    with grpc.insecure_channel(address) as channel:
        try:
            check = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError as error:
            result["error"] = error.code().name
            return result
        result["status"] = health_pb2.HealthCheckResponse.ServingStatus.Name(check.status)
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        for response in stub.ServerReflectionInfo(iter([request]), timeout=timeout_s):
            result["services"] = sorted(s.name for s in response.list_services_response.service)
    return result
