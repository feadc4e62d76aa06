"""A competition in mleb's own format is graded by its metric name through real servers."""

from __future__ import annotations

import grpc
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc

from services.common.settings import Settings
from services.grader.app import grader_service
from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.registry.importers.own_format import import_competition
from tests.conftest import bearer
from tests.fixtures.registry_trees import build_own_competition


async def test_own_format_competition_grades_by_metric_name(serve, settings, tmp_path, lab_token):
    folder = build_own_competition(tmp_path / "src", "own-comp", lower_is_better=None)
    (folder / "private" / "answers.csv").write_text("id,label\n1,a\n2,b\n3,b\n4,a\n")
    core = RegistryCore.from_settings(settings)
    import_competition(CompetitionInstaller(core.sessions, core.storage), folder)
    core.close()
    registry = await serve([registry_service(settings)], settings)
    graded = Settings(**{**settings.__dict__, "registry_addr": f"127.0.0.1:{registry.port}"})
    grader = await serve([grader_service(graded)], graded)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grader.port}") as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        header = pb.SubmissionHeader(competition_id="own-comp", submission_path="s.csv")
        data = b"id,label\n4,a\n3,b\n2,a\n1,a\n"
        reply = await stub.GradeSubmission(
            iter([pb.GradeSubmissionRequest(header=header), pb.GradeSubmissionRequest(chunk=data)]),
            metadata=bearer(lab_token),
        )
    # 3 of 4 right; leaderboard 0.9, 0.8, 0.5: bronze is position 1, median 0.8.
    report = reply.report
    assert report.score == 0.75 and report.valid_submission
    assert not report.any_medal and not report.above_median
    assert report.median_threshold == 0.8
