"""`mleb grade-sample` and `mleb grade`, offline and through real servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.grading_stack import COMPETITION, LEADERBOARD, TRUTH, submission_csv

MLEB = [sys.executable, "-m", "services.cli.main"]


def _flip(n: int) -> bytes:
    return submission_csv([not t if i < n else t for i, t in enumerate(TRUTH)])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "answers": tmp_path / "test.csv",
        "leaderboard": tmp_path / "leaderboard.csv",
        "good": tmp_path / "good.csv",
        "bad": tmp_path / "bad.csv",
    }
    paths["answers"].write_bytes(submission_csv())
    paths["leaderboard"].write_text("score\n" + "".join(f"{s}\n" for s in LEADERBOARD))
    paths["good"].write_bytes(_flip(4))
    paths["bad"].write_text("PassengerId\nx\n")
    return paths


def _mleb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MLEB, *args], capture_output=True, text=True, timeout=120, env=env or dict(os.environ)
    )


def test_grade_sample_offline_prints_the_report_as_json(files):
    result = _mleb(
        "grade-sample", str(files["good"]), COMPETITION,
        "--answers", str(files["answers"]), "--leaderboard", str(files["leaderboard"]), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["score"] == 0.9 and report["valid_submission"]
    # 20 teams from 1.0 down: gold 0.95 (position 2), silver 0.85, bronze 0.65.
    assert (report["gold_threshold"], report["silver_threshold"]) == (0.95, 0.85)
    assert report["silver_medal"] and not report["gold_medal"]
    assert report["submission_path"] == str(files["good"])


def test_grade_sample_exits_zero_for_invalid_and_missing_submissions(files, tmp_path):
    invalid = _mleb("grade-sample", str(files["bad"]), COMPETITION,
                    "--answers", str(files["answers"]), "--json")  # fmt: skip
    assert invalid.returncode == 0
    report = json.loads(invalid.stdout)
    assert report["score"] is None and not report["valid_submission"] and report["error"]
    assert report["gold_threshold"] is None  # no leaderboard given
    missing = _mleb("grade-sample", str(tmp_path / "none.csv"), COMPETITION,
                    "--answers", str(files["answers"]), "--json")  # fmt: skip
    assert missing.returncode == 0
    assert json.loads(missing.stdout)["submission_exists"] is False


def test_an_existing_file_that_is_not_a_csv_says_so(files, tmp_path):
    """Issue 12: it used to read "No submission file was found." for a file that is there."""
    text = tmp_path / "submission.txt"
    text.write_bytes(files["good"].read_bytes())
    result = _mleb("grade-sample", str(text), COMPETITION,
                   "--answers", str(files["answers"]), "--json")  # fmt: skip
    report = json.loads(result.stdout)
    assert report["submission_exists"] is False  # as MLE-bench counts it
    assert "exists but is not a CSV file" in report["error"] and "'.txt'" in report["error"]
    folder = _mleb("grade-sample", str(tmp_path), COMPETITION,
                   "--answers", str(files["answers"]), "--json")  # fmt: skip
    assert "is a directory" in json.loads(folder.stdout)["error"]
    missing = _mleb("grade-sample", str(tmp_path / "none.csv"), COMPETITION,
                    "--answers", str(files["answers"]), "--json")  # fmt: skip
    assert json.loads(missing.stdout)["error"] == "No submission file was found."


def test_grade_sample_fails_for_usage_and_io_errors(files, tmp_path):
    assert _mleb("grade-sample", str(files["good"]), COMPETITION,
                 "--answers", str(tmp_path / "nope.csv")).returncode == 2  # fmt: skip
    assert _mleb("grade-sample", str(files["good"])).returncode == 2


def test_grade_writes_mlebench_aggregated_report(files, tmp_path):
    lines = [
        {"competition_id": COMPETITION, "submission_path": str(files["good"]),
         "answers_path": str(files["answers"]), "leaderboard_path": str(files["leaderboard"])},
        {"competition_id": COMPETITION, "submission_path": "relative/none.csv",
         "answers_path": str(files["answers"])},
    ]  # fmt: skip
    jsonl = tmp_path / "submissions.jsonl"
    jsonl.write_text("# a comment line\n" + "".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    result = _mleb("grade", "--submission", str(jsonl), "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    (report_file,) = out.glob("*_grading_report.json")
    report = json.loads(report_file.read_text())
    assert report["total_runs"] == 2 and report["total_runs_with_submissions"] == 1
    assert report["total_valid_submissions"] == 1 and report["total_silver_medals"] == 1
    # submission_path is kept exactly as given, relative or not.
    assert [r["submission_path"] for r in report["competition_reports"]] == [
        str(files["good"]),
        "relative/none.csv",
    ]


def test_grade_refuses_malformed_jsonl(tmp_path):
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"competition_id": "x"}\n')
    result = _mleb("grade", "--submission", str(jsonl), "--output-dir", str(tmp_path / "o"))
    assert result.returncode == 2 and "submission_path" in result.stderr


async def _grade_sample(env: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *MLEB, "grade-sample", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, stdout, stderr


async def test_grade_sample_through_a_grader_with_a_lab_token(stack, files, lab_token, tmp_path):
    env = {**os.environ, "MLEB_TOKEN": lab_token}
    grader = ["--grader", f"127.0.0.1:{stack.grader_port}", "--json"]
    code, stdout, stderr = await _grade_sample(env, str(files["good"]), COMPETITION, *grader)
    assert code == 0, stderr.decode()
    report = json.loads(stdout)
    assert report["score"] == 0.9 and report["silver_medal"] and report["bundle_digest"]
    missing = tmp_path / "missing.csv"
    code, stdout, stderr = await _grade_sample(env, str(missing), COMPETITION, *grader)
    assert code == 0, stderr.decode()
    report = json.loads(stdout)
    assert not report["submission_exists"] and report["gold_threshold"] == 0.95


async def test_in_process_grading_reads_answers_only_with_service_credentials(
    stack, files, lab_token
):
    base = {**os.environ, "MLEB_REGISTRY_ADDR": f"127.0.0.1:{stack.registry_port}"}
    base.pop("MLEB_TOKEN", None)
    operator = {**base, "MLEB_AUTH_SECRET": stack.settings.auth_secret}
    code, stdout, stderr = await _grade_sample(operator, str(files["good"]), COMPETITION, "--json")
    assert code == 0, stderr.decode()
    assert json.loads(stdout)["score"] == 0.9
    lab = {**base, "MLEB_TOKEN": lab_token}
    code, _, stderr = await _grade_sample(lab, str(files["good"]), COMPETITION, "--json")
    assert code == 2 and b"service" in stderr
