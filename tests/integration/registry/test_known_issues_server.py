"""GetCompetition and ListCompetitions carry a competition's known issues through a real server.

The fixture competitions are synthetic (none has an upstream known issue), so the lookup the
servicer uses is patched to give one of them the real data of an actual MLE-bench entry.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mleb.registry.v1 import registry_pb2
from mleb.registry.v1 import registry_service_pb2 as pb
from mleb.registry.v1.registry_service_pb2_grpc import RegistryServiceStub

from services.common.auth import Role, TokenAuthority
from services.registry import known_issues as ki
from services.registry import servicer
from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.registry.importers.mlebench import import_mlebench
from tests.conftest import bearer
from tests.fixtures.registry_trees import build_mlebench_tree

REAL = "random-acts-of-pizza"


@pytest.fixture
async def stub(settings, database_url, tmp_path: Path, serve, channel_to) -> RegistryServiceStub:
    settings = dataclasses.replace(settings, database_url=database_url)
    core = RegistryCore.from_settings(settings)
    tree = build_mlebench_tree(tmp_path / "src")
    import_mlebench(CompetitionInstaller(core.sessions, core.storage), tree.repo, tree.data_dir)
    core.close()
    server = await serve([registry_service(settings)], settings)
    return RegistryServiceStub(channel_to(server))


async def test_known_issues_served_in_every_view(
    stub, authority: TokenAuthority, monkeypatch
) -> None:
    real = ki.known_issues(REAL)
    assert len(real) == 1
    # Give the imported alpha-cls the real entry; every other id keeps the real lookup.
    original = ki.known_issues
    monkeypatch.setattr(
        servicer,
        "known_issues",
        lambda cid: (
            tuple(dataclasses.replace(i, competition_id=cid) for i in real)
            if cid == "alpha-cls"
            else original(cid)
        ),
    )
    md = bearer(authority.issue(Role.LAB, "lab"))

    got = (
        await stub.GetCompetition(pb.GetCompetitionRequest(competition_id="alpha-cls"), metadata=md)
    ).competition
    assert len(got.known_issues) == 1
    issue = got.known_issues[0]
    assert issue.upstream_issue == 108
    assert issue.url == "https://github.com/openai/mle-bench/issues/108"
    assert issue.kind == "leakage"
    assert issue.title == real[0].title and issue.summary == real[0].summary

    other = (
        await stub.GetCompetition(pb.GetCompetitionRequest(competition_id="beta-reg"), metadata=md)
    ).competition
    assert list(other.known_issues) == []

    for view in (registry_pb2.COMPETITION_VIEW_BASIC, registry_pb2.COMPETITION_VIEW_FULL):
        listed = await stub.ListCompetitions(pb.ListCompetitionsRequest(view=view), metadata=md)
        by_id = {c.id: c for c in listed.competitions}
        assert [i.upstream_issue for i in by_id["alpha-cls"].known_issues] == [108]
        assert not by_id["beta-reg"].known_issues
