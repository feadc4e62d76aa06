"""`mleb report` end to end: split lists from a folder or a real registry server, every output
format, and the HTML page rendered in a real headless chromium."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from mleb.lab.report_cmds import report
from typer.testing import CliRunner

from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller, ImportStatus
from services.registry.importers.own_format import import_competition
from tests.conftest import require_or_skip
from tests.fixtures.registry_trees import build_own_competition
from tests.unit.runs.run_group_builder import write_example, write_no_leaderboard_example

runner = CliRunner()
app = typer.Typer()
app.command()(report)
# The environment a developer may have set must not change what these tests read.
CLEAN_ENV = {"MLEB_REGISTRY_ADDR": None, "MLEB_TOKEN": None}


@pytest.fixture
def example(tmp_path: Path) -> tuple[list[str], Path]:
    groups, splits_dir = write_example(tmp_path)
    return [str(g) for g in groups], splits_dir


def invoke(*args: str, env: dict[str, str | None] | None = None):
    return runner.invoke(app, list(args), env={**CLEAN_ENV, **(env or {})})


def test_json_has_mleb_bench_numbers(example) -> None:
    groups, splits_dir = example
    result = invoke(*groups, "--splits-dir", str(splits_dir), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    splits = {s["split"]: s for s in data["splits"]}
    assert list(splits) == ["low", "medium", "all"]
    any_medal = splits["all"]["metrics"]["any_medal_percentage"]
    assert any_medal["mean"] == pytest.approx(25)
    assert any_medal["standard_error"] == pytest.approx(25 / 3**0.5)
    assert splits["all"]["padded_results"] == 4
    assert splits["all"]["pass_at_k"] == pytest.approx({"1": 25, "2": 500 / 12, "3": 50})
    assert data["failures"]["infrastructure_failures"] == 1
    assert data["failures"]["agent_failures"] == 1
    assert data["groups"][0]["budget"]["time_limit_s"] == 86400


def test_markdown_on_stdout(example) -> None:
    groups, splits_dir = example
    result = invoke(*groups, "--splits-dir", str(splits_dir))
    assert result.exit_code == 0, result.output
    markdown = result.stdout
    assert "| low (lite) | 2 (2) | 3 | 33.33 ± 16.67 |" in markdown
    assert "| all (split75) | 4 (3) | 3 | 25.00 ± 14.43 |" in markdown
    assert "| all (split75) | 25.00 | 41.67 | 50.00 |" in markdown
    assert "seed 0: 0.95 gold; seed 1: 0.72 bronze; seed 2: invalid | 2/3 | v2 |" in markdown
    assert "| total | 9 | 7 | 1 | 1 | 3 | 0 |" in markdown
    assert f"sha256:{'ab' * 32}" in markdown and "| 24h | 1 | 8 | 64 GiB | none |" in markdown


def test_output_dir_gets_every_format(example, tmp_path: Path) -> None:
    groups, splits_dir = example
    out = tmp_path / "out"
    result = invoke(*groups, "--splits-dir", str(splits_dir), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert result.stdout == ""
    only_html = tmp_path / "html"
    result = invoke(*groups, "--splits-dir", str(splits_dir), "--format", "html",
                    "--output-dir", str(only_html))  # fmt: skip
    assert [p.name for p in only_html.iterdir()] == ["report.html"]


def test_html_is_self_contained(example) -> None:
    groups, splits_dir = example
    page = invoke(*groups, "--splits-dir", str(splits_dir), "--format", "html").stdout
    assert page.startswith("<!DOCTYPE html>")
    for fetches in ("<script", "<link", "src=", "url(", "@import"):
        assert fetches not in page, fetches
    # The only URL is SVG's namespace name, which is never fetched.
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}


def test_markup_in_ids_is_escaped(example) -> None:
    groups, splits_dir = example
    report_path = next(Path(groups[0]).glob("*_grading_report.json"))
    data = json.loads(report_path.read_text())
    data["competition_reports"][0]["competition_id"] = "<img onerror=x>"
    report_path.write_text(json.dumps(data))
    page = invoke(*groups, "--splits-dir", str(splits_dir), "--format", "html").stdout
    assert "<img" not in page and "&lt;img onerror=x&gt;" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "pass --registry ADDR (or set MLEB_REGISTRY_ADDR) or --splits-dir DIR"),
        (["--splits-dir", "{tmp}/nowhere"], "is not a folder"),
        (["--splits-dir", "{tmp}"], "holds none of low.txt, medium.txt, high.txt, split75.txt"),
        # Nothing listens on port 1.
        (["--registry", "127.0.0.1:1"], "registry 127.0.0.1:1: UNAVAILABLE"),
    ],
)
def test_split_source_errors(example, tmp_path: Path, args: list[str], message: str) -> None:
    groups, _ = example
    (tmp_path / "empty").mkdir()
    result = invoke(*groups, *[a.format(tmp=tmp_path / "empty") for a in args])
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_unreadable_group_is_named(example, tmp_path: Path) -> None:
    groups, splits_dir = example
    next(Path(groups[1]).glob("*_grading_report.json")).unlink()
    result = invoke(*groups, "--splits-dir", str(splits_dir))
    assert result.exit_code == 2
    assert groups[1] in result.stderr and "no *_grading_report.json" in result.stderr


def install_example_competitions(settings, tmp_path: Path, splits: list[str], *,
                                 builtin: bool = False) -> None:  # fmt: skip
    """The example's competitions; built-ins have no complexity, so they join no such split."""
    core = RegistryCore.from_settings(settings)
    installer = CompetitionInstaller(core.sessions, core.storage)
    try:
        for competition_id, complexity in (("alpha", "low"), ("beta", "low"),
                                           ("gamma", "medium"), ("delta", "high")):  # fmt: skip
            folder = build_own_competition(
                tmp_path / "own",
                competition_id,
                complexity=None if builtin else complexity,
                splits=splits,
            )
            assert import_competition(installer, folder).status is ImportStatus.PREPARED
    finally:
        core.close()


@pytest.fixture
def registry_settings(settings, tmp_path: Path):
    """A registry whose splits match the example's splits folder."""
    install_example_competitions(settings, tmp_path, ["all"])
    return settings


async def test_groups_on_builtin_competitions_are_reported(example, settings, tmp_path, serve,
                                                           lab_token) -> None:  # fmt: skip
    """The demo's competitions live only in the `builtin` split (issue 16, item 5)."""
    install_example_competitions(settings, tmp_path, ["builtin"], builtin=True)
    groups, _splits_dir = example
    server = await serve([registry_service(settings)], settings)
    env = {"MLEB_REGISTRY_ADDR": f"127.0.0.1:{server.port}", "MLEB_TOKEN": lab_token}
    result = await asyncio.to_thread(invoke, *groups, "--format", "json", env=env)
    assert result.exit_code == 0, result.output
    (split,) = json.loads(result.stdout)["splits"]
    assert split["split"] == "builtin" and split["padded_results"] == 4


async def test_splits_from_a_registry_server(example, registry_settings, serve, lab_token):
    groups, splits_dir = example
    server = await serve([registry_service(registry_settings)], registry_settings)
    env = {"MLEB_REGISTRY_ADDR": f"127.0.0.1:{server.port}", "MLEB_TOKEN": lab_token}
    online = await asyncio.to_thread(invoke, *groups, "--format", "json", env=env)
    assert online.exit_code == 0, online.output
    offline = invoke(*groups, "--splits-dir", str(splits_dir), "--format", "json")
    drop_time = re.compile(r'"generated_at": "[^"]+"')
    assert drop_time.sub("", online.stdout) == drop_time.sub("", offline.stdout)

    denied = await asyncio.to_thread(
        invoke, *groups, "--registry", env["MLEB_REGISTRY_ADDR"], env={"MLEB_TOKEN": ""}
    )
    assert denied.exit_code == 2 and "UNAUTHENTICATED" in denied.stderr, denied.output


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def test_html_renders_in_headless_chromium(example, tmp_path: Path) -> None:
    browser = _chromium()
    require_or_skip(browser is not None, "chromium (apt-get install chromium)",
                    "MLEB_REQUIRE_CHROMIUM")  # fmt: skip
    groups, splits_dir = example
    out = tmp_path / "out"
    assert invoke(*groups, "--splits-dir", str(splits_dir), "--format", "html",
                  "--output-dir", str(out)).exit_code == 0  # fmt: skip
    url = (out / "report.html").as_uri()
    dom = _headless(browser, tmp_path / "profile", "--dump-dom", url).stdout
    # The browser parsed both charts into SVG elements: gold bars for low and all (medium's
    # medal is silver), silver ones for medium and all, a row per competition and a dot per
    # valid score (6 of the 8 results).
    assert re.search(r'<svg id="chart-medals"[^>]*>', dom)
    assert len(re.findall(r'<rect class="bar-gold"', dom)) == 2
    assert len(re.findall(r'<rect class="bar-silver"', dom)) == 2
    assert len(re.findall(r'<g class="competition-row"', dom)) == 3
    assert len(re.findall(r'<circle class="score"', dom)) == 6
    assert len(re.findall(r'<line class="threshold threshold-gold"', dom)) == 3
    screenshot = tmp_path / "report.png"
    _headless(browser, tmp_path / "profile", f"--screenshot={screenshot}",
              "--window-size=1280,2000", url)  # fmt: skip
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000


def test_upstream_runs_in_a_plain_clone_get_the_lfs_hint(example, tmp_path: Path) -> None:
    """Issue 12: MLE-bench ships runs/ in Git LFS; a plain clone's grading reports are
    pointers, which used to be reported as "not valid JSON"."""
    _, splits_dir = example
    group = tmp_path / "runs" / "2024-09-06T18-25-55-UTC_run-group_aide"
    group.mkdir(parents=True)
    # Upstream's own file name (its gmtime %Z wrote GMT), content as a plain clone holds it.
    (group / "2024-09-19T20-07-15-GMT_grading_report.json").write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:9fceb6e4133658387d61334249f87e3535cdf2159fceb6e4133658387d613342\n"
        "size 51234\n"
    )
    result = invoke(str(group), "--splits-dir", str(splits_dir))
    assert result.exit_code == 2
    assert "Git LFS pointer" in result.output and "git lfs pull" in result.output
    assert "not valid JSON" not in result.output


def test_competitions_without_a_leaderboard_are_named_in_every_format(tmp_path: Path) -> None:
    """Issue 12: a competition graded without a real leaderboard (a Git LFS pointer, or none
    imported) is said to have no computable medals, with the fix, and counted per split, in
    every format; the numbers stay MLE-bench's."""
    group, splits_dir = write_no_leaderboard_example(tmp_path)
    out = tmp_path / "out"
    result = invoke(str(group), "--splits-dir", str(splits_dir), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    data = json.loads((out / "report.json").read_text())
    for text in (markdown, page):
        assert "Medals could not be computed for 2 of the 3 competitions run" in text
        assert "epsilon: medals could not be computed because its leaderboard is a Git LFS " \
            "pointer" in text  # fmt: skip
        assert "zeta: medals could not be computed because its leaderboard is missing" in text
        assert text.count("run `git lfs pull` in the MLE-bench checkout") >= 3
    assert "| all (split75) | 3 (3) | 2 | 16.67 ± 16.67 |" in markdown
    assert data["competitions_without_leaderboard"] == ["epsilon", "zeta"]
    splits = {s["split"]: s for s in data["splits"]}
    assert splits["all"]["without_leaderboard"] == ["epsilon", "zeta"]
    assert splits["all"]["metrics"]["any_medal_percentage"]["mean"] == pytest.approx(100 / 6)
    states = {c["competition_id"]: c["leaderboard_state"] for c in data["competitions"]}
    assert states == {"alpha": "present", "epsilon": "lfs_pointer", "zeta": "missing"}
