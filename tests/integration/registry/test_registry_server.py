"""Every RegistryService RPC through a real server on 127.0.0.1:0, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.common.v1 import common_pb2
from mleb.public_listing import public_listing_digest
from mleb.registry.v1 import registry_pb2
from mleb.registry.v1 import registry_service_pb2 as pb
from mleb.registry.v1.registry_service_pb2_grpc import RegistryServiceStub

from services.common.auth import Role, TokenAuthority
from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.registry.importers.mlebench import import_mlebench
from services.registry.importers.own_format import import_competition
from services.registry.servicer import RPC_ROLES
from tests.conftest import bearer
from tests.fixtures.registry_trees import ALPHA_SCORES, build_mlebench_tree, build_own_competition


@pytest.fixture
async def stub(settings, database_url, tmp_path: Path, serve, channel_to) -> RegistryServiceStub:
    settings = dataclasses.replace(settings, database_url=database_url)
    core = RegistryCore.from_settings(settings)
    installer = CompetitionInstaller(core.sessions, core.storage)
    tree = build_mlebench_tree(tmp_path / "src")
    import_mlebench(installer, tree.repo, tree.data_dir)
    import_competition(installer, build_own_competition(tmp_path / "own"))
    core.close()
    server = await serve([registry_service(settings)], settings)
    return RegistryServiceStub(channel_to(server))


@pytest.fixture
def tokens(authority: TokenAuthority) -> dict[str, str]:
    return {
        "service": authority.issue(Role.SERVICE, "grader"),
        "lab": authority.issue(Role.LAB, "lab"),
        "sandbox": authority.issue(
            Role.SANDBOX, "agent", sandbox_id="sbx-1", competition_id="alpha-cls"
        ),
    }


def details(error: grpc.aio.AioRpcError) -> dict[str, object]:
    status = rpc_status.from_call(error)
    found: dict[str, object] = {}
    for detail in status.details if status else []:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.__name__] = message
    return found


async def fails(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        result = call()
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def test_list_and_splits(stub, tokens) -> None:
    md = bearer(tokens["lab"])
    response = await stub.ListCompetitions(pb.ListCompetitionsRequest(), metadata=md)
    assert response.total_size == 5
    alpha = response.competitions[0]
    assert alpha.id == "alpha-cls" and alpha.description == "" and not alpha.public_files
    assert alpha.complexity == registry_pb2.COMPLEXITY_LOW
    assert alpha.data_status == registry_pb2.DATA_STATUS_PREPARED
    assert alpha.leaderboard_size == len(ALPHA_SCORES) and alpha.imported_at.seconds > 0

    lite = await stub.ListCompetitions(pb.ListCompetitionsRequest(split="lite"), metadata=md)
    assert [c.id for c in lite.competitions] == ["alpha-cls", "own-comp"]
    high = await stub.ListCompetitions(
        pb.ListCompetitionsRequest(complexity=registry_pb2.COMPLEXITY_HIGH), metadata=md
    )
    assert [c.id for c in high.competitions] == ["epsilon-nodata", "gamma-lfs"]
    assert high.competitions[0].data_status == registry_pb2.DATA_STATUS_METADATA_ONLY
    assert "mlebench prepare" in high.competitions[0].data_status_reason
    tabular = await stub.ListCompetitions(
        pb.ListCompetitionsRequest(category="Tabular", view=registry_pb2.COMPETITION_VIEW_FULL),
        metadata=md,
    )
    assert [c.id for c in tabular.competitions] == ["beta-reg", "own-comp"]
    assert tabular.competitions[0].description and tabular.competitions[0].public_files

    first = await stub.ListCompetitions(pb.ListCompetitionsRequest(page_size=3), metadata=md)
    rest = await stub.ListCompetitions(
        pb.ListCompetitionsRequest(page_size=3, page_token=first.next_page_token), metadata=md
    )
    assert len(first.competitions) == 3 and len(rest.competitions) == 2
    assert rest.next_page_token == ""

    splits = (await stub.ListSplits(pb.ListSplitsRequest(), metadata=md)).splits
    assert [s.name for s in splits] == ["low", "medium", "high", "all", "dev"]
    assert list(splits[0].aliases) == ["lite"]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": -5}, "page_size"),
        ({"page_size": 5000}, "page_size"),
        ({"page_token": "%%%"}, "page_token"),
        ({"split": "nonsense"}, "split"),
        ({"complexity": 42}, "complexity"),
        ({"view": 9}, "view"),
    ],
)
async def test_list_rejects_bad_fields(stub, tokens, request_fields: dict, field: str) -> None:
    error = await fails(
        lambda: stub.ListCompetitions(
            pb.ListCompetitionsRequest(**request_fields), metadata=bearer(tokens["lab"])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details(error)["BadRequest"].field_violations[0].field == field


async def test_get_competition(stub, tokens) -> None:
    md = bearer(tokens["lab"])
    plain = (
        await stub.GetCompetition(pb.GetCompetitionRequest(competition_id="beta-reg"), metadata=md)
    ).competition
    assert plain.description.startswith("# beta-reg") and plain.lower_is_better
    assert plain.has_obfuscated_description
    assert {f.path for f in plain.public_files} >= {"images/a.png", "train.csv"}
    assert plain.public_data_size_bytes == sum(f.size_bytes for f in plain.public_files)
    obfuscated = (
        await stub.GetCompetition(
            pb.GetCompetitionRequest(
                competition_id="beta-reg",
                description_variant=common_pb2.DESCRIPTION_VARIANT_OBFUSCATED,
            ),
            metadata=md,
        )
    ).competition
    assert obfuscated.description.startswith("# A task")
    own = (
        await stub.GetCompetition(pb.GetCompetitionRequest(competition_id="own-comp"), metadata=md)
    ).competition
    assert own.source == "mleb" and list(own.id_columns) == ["id"]
    assert dict(own.metric.params) == {"k": "1"}
    await fails(
        lambda: stub.GetCompetition(
            pb.GetCompetitionRequest(
                competition_id="own-comp",
                description_variant=common_pb2.DESCRIPTION_VARIANT_OBFUSCATED,
            ),
            metadata=md,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_leaderboard(stub, tokens) -> None:
    md = bearer(tokens["lab"])
    response = await stub.GetLeaderboard(
        pb.GetLeaderboardRequest(competition_id="alpha-cls"), metadata=md
    )
    assert [e.score for e in response.entries] == ALPHA_SCORES
    assert response.entries[0].position == 1 and response.entries[0].team_name == "100"
    thresholds = response.thresholds
    assert thresholds.gold_threshold == ALPHA_SCORES[1]
    assert thresholds.median_threshold == pytest.approx((ALPHA_SCORES[9] + ALPHA_SCORES[10]) / 2)
    assert thresholds.leaderboard_known and thresholds.leaderboard_size == 20
    assert not thresholds.awards_medals and thresholds.medal == common_pb2.MEDAL_NONE
    empty = await stub.GetLeaderboard(
        pb.GetLeaderboardRequest(competition_id="gamma-lfs"), metadata=md
    )
    assert not empty.entries and not empty.thresholds.HasField("gold_threshold")
    assert not empty.thresholds.leaderboard_known


async def collect(stream) -> dict[str, bytes]:
    files: dict[str, bytearray] = {}
    async for chunk in stream:
        data = files.setdefault(chunk.path, bytearray())
        assert chunk.offset == len(data)
        data += chunk.data
        if chunk.last_chunk:
            assert hashlib.sha256(data).hexdigest() == chunk.sha256
            assert len(data) == chunk.size_bytes
    return {k: bytes(v) for k, v in files.items()}


async def test_download(stub, tokens) -> None:
    md = bearer(tokens["lab"])
    files = await collect(
        stub.DownloadPublicData(
            pb.DownloadPublicDataRequest(competition_id="beta-reg"), metadata=md
        )
    )
    assert set(files) == {
        "images/a.png",
        "images/nested/b.png",
        "sample_submission.csv",
        "train.csv",
    }
    assert files["images/a.png"].startswith(b"\x89PNG") and len(files["images/a.png"]) == 10248
    only = await collect(
        stub.DownloadPublicData(
            pb.DownloadPublicDataRequest(competition_id="beta-reg", paths=["images/nested"]),
            metadata=md,
        )
    )
    assert set(only) == {"images/nested/b.png"}


@pytest.mark.parametrize(
    "path", ["../private/test.csv", "/etc/passwd", "images/../../private/answers.jsonl", ""]
)
async def test_download_path_tricks(stub, tokens, path: str) -> None:
    error = await fails(
        lambda: stub.DownloadPublicData(
            pb.DownloadPublicDataRequest(competition_id="beta-reg", paths=[path]),
            metadata=bearer(tokens["lab"]),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details(error)["BadRequest"].field_violations[0].field == "paths[0]"


async def test_download_unknown_path_and_metadata_only(stub, tokens) -> None:
    md = bearer(tokens["lab"])
    await fails(
        lambda: stub.DownloadPublicData(
            pb.DownloadPublicDataRequest(competition_id="beta-reg", paths=["answers.jsonl"]),
            metadata=md,
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await fails(
        lambda: stub.DownloadPublicData(
            pb.DownloadPublicDataRequest(competition_id="epsilon-nodata"), metadata=md
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_grading_bundle(stub, tokens) -> None:
    md = bearer(tokens["service"])
    parts = [
        p
        async for p in stub.GetGradingBundle(
            pb.GetGradingBundleRequest(competition_id="beta-reg"), metadata=md
        )
    ]
    header = parts[0].header
    answers = b"".join(p.answers_chunk for p in parts[1:])
    assert answers == b'{"id": 2, "y": 1.5}\n'
    assert header.answers_format == "jsonl" and header.lower_is_better
    assert header.answers_sha256 == hashlib.sha256(answers).hexdigest()
    assert len(header.leaderboard) == 12 and len(header.digest) == 64
    again = [
        p
        async for p in stub.GetGradingBundle(
            pb.GetGradingBundleRequest(competition_id="beta-reg", known_digest=header.digest),
            metadata=md,
        )
    ]
    assert len(again) == 1 and again[0].header.not_modified


@pytest.mark.parametrize("bad_id", ["nope", "../alpha-cls", "alpha-cls%00", "x" * 128])
async def test_bad_ids_are_not_found(stub, tokens, bad_id: str) -> None:
    md = bearer(tokens["service"])
    for call in (
        lambda: stub.GetCompetition(pb.GetCompetitionRequest(competition_id=bad_id), metadata=md),
        lambda: stub.GetLeaderboard(pb.GetLeaderboardRequest(competition_id=bad_id), metadata=md),
        lambda: stub.DownloadPublicData(
            pb.DownloadPublicDataRequest(competition_id=bad_id), metadata=md
        ),
        lambda: stub.GetGradingBundle(
            pb.GetGradingBundleRequest(competition_id=bad_id), metadata=md
        ),
    ):
        error = await fails(call, grpc.StatusCode.NOT_FOUND)
        assert details(error)["ErrorInfo"].reason == "COMPETITION_NOT_FOUND"
    # Empty, or longer than any id can be (docs/limits.md): the request itself is wrong.
    for wrong in ("", "x" * 129):
        request = pb.GetCompetitionRequest(competition_id=wrong)
        await fails(
            lambda r=request: stub.GetCompetition(r, metadata=md), grpc.StatusCode.INVALID_ARGUMENT
        )


def calls(stub, competition_id: str) -> dict:
    return {
        "ListCompetitions": lambda md: stub.ListCompetitions(
            pb.ListCompetitionsRequest(), metadata=md
        ),
        "GetCompetition": lambda md: stub.GetCompetition(
            pb.GetCompetitionRequest(competition_id=competition_id), metadata=md
        ),
        "GetLeaderboard": lambda md: stub.GetLeaderboard(
            pb.GetLeaderboardRequest(competition_id=competition_id), metadata=md
        ),
        "ListSplits": lambda md: stub.ListSplits(pb.ListSplitsRequest(), metadata=md),
        "DownloadPublicData": lambda md: stub.DownloadPublicData(
            pb.DownloadPublicDataRequest(competition_id=competition_id), metadata=md
        ),
        "GetGradingBundle": lambda md: stub.GetGradingBundle(
            pb.GetGradingBundleRequest(competition_id=competition_id), metadata=md
        ),
        "AppendAuditEvents": lambda md: stub.AppendAuditEvents(
            pb.AppendAuditEventsRequest(
                events=[
                    registry_pb2.AuditEvent(kind="grader_call", fields_json='{"rpc": "RankScore"}')
                ]
            ),
            metadata=md,
        ),
        "ExportAuditChain": lambda md: stub.ExportAuditChain(
            pb.ExportAuditChainRequest(from_seq=1), metadata=md
        ),
        "ListPublicFiles": lambda md: stub.ListPublicFiles(
            pb.ListPublicFilesRequest(competition_id=competition_id), metadata=md
        ),
    }


async def succeeds(call) -> None:
    result = call()
    if hasattr(result, "__aiter__"):
        async for _ in result:
            pass
    else:
        await result


async def test_role_matrix(stub, tokens) -> None:
    # Token revocation has its own tests (tests/integration/test_token_revocation.py).
    assert set(RPC_ROLES) - {"RevokeToken", "ListRevokedTokens"} == set(calls(stub, "alpha-cls"))
    for method, call in calls(stub, "alpha-cls").items():
        for role in Role:
            md = bearer(tokens[role.value])
            if role in RPC_ROLES[method]:
                await succeeds(lambda call=call, md=md: call(md))
            else:
                error = await fails(
                    lambda call=call, md=md: call(md), grpc.StatusCode.PERMISSION_DENIED
                )
                assert details(error)["ErrorInfo"].reason == "ROLE_NOT_ALLOWED", method
        await fails(lambda call=call: call(()), grpc.StatusCode.UNAUTHENTICATED)
    assert RPC_ROLES["GetGradingBundle"] == frozenset({Role.SERVICE})


async def test_sandbox_reaches_only_its_competition(stub, tokens) -> None:
    md = bearer(tokens["sandbox"])
    for method in ("GetCompetition", "DownloadPublicData", "ListPublicFiles"):
        error = await fails(
            lambda method=method: calls(stub, "beta-reg")[method](md),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        assert details(error)["ErrorInfo"].reason == "WRONG_COMPETITION"
    files = await collect(
        stub.DownloadPublicData(
            pb.DownloadPublicDataRequest(competition_id="alpha-cls"), metadata=md
        )
    )
    assert "test.csv" in files and not any("private" in p for p in files)


async def test_list_public_files_pages_the_listing_getcompetition_digests(stub, tokens) -> None:
    md = bearer(tokens["lab"])
    full = (
        await stub.GetCompetition(pb.GetCompetitionRequest(competition_id="beta-reg"), metadata=md)
    ).competition
    slim = (
        await stub.GetCompetition(
            pb.GetCompetitionRequest(competition_id="beta-reg", omit_public_files=True),
            metadata=md,
        )
    ).competition
    assert not slim.public_files and slim.description == full.description
    assert slim.public_file_count == len(full.public_files) >= 3
    listing = [(f.path, f.size_bytes, f.sha256) for f in full.public_files]
    assert slim.public_listing_digest == full.public_listing_digest
    assert slim.public_listing_digest == public_listing_digest(listing)
    paged, token = [], ""
    while True:
        reply = await stub.ListPublicFiles(
            pb.ListPublicFilesRequest(competition_id="beta-reg", page_size=1, page_token=token),
            metadata=md,
        )
        assert len(reply.public_files) == 1
        assert reply.public_listing_digest == slim.public_listing_digest
        paged.extend((f.path, f.size_bytes, f.sha256) for f in reply.public_files)
        if not (token := reply.next_page_token):
            break
    assert paged == sorted(listing)


async def test_list_public_files_refusals(stub, tokens) -> None:
    md = bearer(tokens["lab"])
    error = await fails(
        lambda: stub.ListPublicFiles(
            pb.ListPublicFilesRequest(competition_id="beta-reg", page_size=10_001), metadata=md
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details(error)["BadRequest"].field_violations[0].field == "page_size"
    error = await fails(
        lambda: stub.ListPublicFiles(
            pb.ListPublicFilesRequest(competition_id="beta-reg", page_token="x" * 20_000),
            metadata=md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details(error)["BadRequest"].field_violations[0].field == "page_token"
    await fails(
        lambda: stub.ListPublicFiles(
            pb.ListPublicFilesRequest(competition_id="no-such"), metadata=md
        ),
        grpc.StatusCode.NOT_FOUND,
    )
