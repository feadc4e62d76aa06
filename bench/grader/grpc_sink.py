"""The floors for moving a submission through gRPC.

A bare grpc.aio server (no interceptors, no auth, no buffer, no hash) whose GradeSubmission
reads every chunk and drops it: the cost of the transfer alone.

With `--grade-ahead COMPETITION ANSWERS SUBMISSION`, the same server also knows the
submission before it arrives: when the header comes, it starts the in-process cached grade
of those bytes, and replies once that grade and the drain have both ended. No server that
grades while the bytes arrive can beat it on the same machine, since it overlaps the whole
grade with the whole transfer: the floor for a streaming design.

bench_grader.py starts it as a child process, as it does the grader, and times the same
request stream against it. Prints its port, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
from mleb.grader.v1 import grader_service_pb2 as pb

from services.common.server import MAX_MESSAGE_BYTES
from services.grader.bundles import LocalBundleProvider
from services.grader.core import GraderCore


def drain(
    ahead: Callable[[], Awaitable[object]] | None,
) -> Callable[[AsyncIterator[pb.GradeSubmissionRequest], object], Awaitable[object]]:
    async def handle(requests: AsyncIterator[pb.GradeSubmissionRequest], context: object) -> object:
        grading = None
        async for request in requests:
            if ahead is not None and grading is None:
                grading = asyncio.ensure_future(ahead())
            request.chunk  # noqa: B018 (read as the grader reads it: a bytes object per chunk)
        if grading is not None:
            await grading
        return pb.GradeSubmissionResponse()

    return handle


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grade-ahead", nargs=3, metavar=("COMPETITION", "ANSWERS", "SUBMISSION"))
    args = parser.parse_args()
    ahead = None
    if args.grade_ahead:
        competition, answers, submission = args.grade_ahead
        data = Path(submission).read_bytes()
        core = GraderCore(LocalBundleProvider(competition, Path(answers)))

        async def ahead() -> object:
            return await core.grade(competition, io.BytesIO(data), "s.csv")

        await ahead()  # the answers cached, as the grader's are
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    handler = grpc.method_handlers_generic_handler(
        "mleb.grader.v1.GraderService",
        {
            "GradeSubmission": grpc.stream_unary_rpc_method_handler(
                drain(ahead),
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
