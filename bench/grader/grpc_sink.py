"""The floor for moving a submission through gRPC: a bare grpc.aio server (no interceptors,
no auth, no buffer, no hash) whose GradeSubmission reads every chunk and drops it.

bench_grader.py starts it as a child process, as it does the grader, and times the same
request stream against it. Prints its port, then serves until killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from mleb.grader.v1 import grader_service_pb2 as pb

from services.common.server import MAX_MESSAGE_BYTES


async def _drop(requests: AsyncIterator[pb.GradeSubmissionRequest], context: object) -> object:
    async for request in requests:
        request.chunk  # noqa: B018 (read as the grader reads it: a bytes object per chunk)
    return pb.GradeSubmissionResponse()


async def main() -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    handler = grpc.method_handlers_generic_handler(
        "mleb.grader.v1.GraderService",
        {
            "GradeSubmission": grpc.stream_unary_rpc_method_handler(
                _drop,
                request_deserializer=pb.GradeSubmissionRequest.FromString,
                response_serializer=pb.GradeSubmissionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
