"""`mleb keys`, `mleb verify` and `mleb report --leaderboard` on run groups produced by `mleb run`
against real servers (local backend). Each kind of evidence is tampered with, one byte or one
record at a time, and verify must name it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from mleb.client import AsyncClient
from mleb.evidence.chain import read_chain
from mleb.lab import evidence_cmds
from mleb.lab.evidence_files import ATTESTATION_FILE, AUDIT_CHAIN_FILE, GRADING_STATEMENT_FILE
from mleb.lab.group_folder import load_run_group
from mleb.lab.records import GRADING_REPORT_SUFFIX
from mleb.lab.report_cmds import report
from typer.testing import CliRunner

from tests.fixtures.grading_stack import COMPETITION, IDS
from tests.fixtures.sandbox_dirs import open_tmp  # noqa: F401
from tests.fixtures.sandbox_stack import sandbox_stack  # noqa: F401
from tests.integration.runs.test_run_cli import (  # noqa: F401
    agent_args,
    invoke,
    local,
    only_group,
    wait_until,
)

runner = CliRunner()
app = typer.Typer()
app.add_typer(evidence_cmds.keys_app, name="keys")
app.command("verify")(evidence_cmds.verify)
app.command("report")(report)


async def cli(servers, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=servers.env)
    return result.exit_code, result.output


async def run_group(servers, runs_dir: Path, *extra: str) -> Path:
    from tests.integration.runs.test_run_cli import app as run_app

    result = await asyncio.to_thread(
        runner.invoke, run_app,
        ["run", *agent_args("local"), "--competitions", "lite", "--seeds", "2",
         "--concurrency", "2", "--time-limit", "2m", "--runs-dir", str(runs_dir),
         "--poll-interval", "0.2", *extra],
        env=servers.env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return only_group(runs_dir)


def _flip_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _envelope_payload(path: Path, change: Callable[[dict], None]) -> None:
    """Re-encodes the statement with a change, keeping the old signature."""
    envelope = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    change(statement)
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))


def _chain_lines(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(change(lines)) + "\n")


def _edit_body(lines: list[str], kind: str) -> list[str]:
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record["body"] and record["body"].get("kind") == kind:
            record["body"]["time"] = "2020-01-01T00:00:00+00:00"
            lines[index] = json.dumps(record)
            return lines
    raise AssertionError(f"no {kind} record")


def _first_run(group: Path) -> Path:
    return sorted(p.parent for p in group.glob(f"*/{ATTESTATION_FILE}"))[0]


def _report(group: Path) -> Path:
    return sorted(group.glob(f"*{GRADING_REPORT_SUFFIX}"))[-1]


def _set_score(data: dict) -> None:
    data["competition_reports"][0]["score"] = 0.5


def _set_total(data: dict) -> None:
    data["total_gold_medals"] += 1


def _submission_byte(group: Path) -> None:
    path = _first_run(group) / "submission" / "submission.csv"
    data = bytearray(path.read_bytes())
    data[-2] ^= 1
    path.write_bytes(bytes(data))


def _swap_attestations(group: Path) -> None:
    first, second = sorted(p.parent for p in group.glob(f"*/{ATTESTATION_FILE}"))
    a, b = (first / ATTESTATION_FILE).read_bytes(), (second / ATTESTATION_FILE).read_bytes()
    (first / ATTESTATION_FILE).write_bytes(b)
    (second / ATTESTATION_FILE).write_bytes(a)


def _drop_a_run(group: Path) -> None:
    """A seed left out as if never run: its folder, its report entry, the totals redone."""
    dropped = sorted(p.parent for p in group.glob(f"*/{ATTESTATION_FILE}"))[-1]
    shutil.rmtree(dropped)

    def without(data: dict) -> None:
        kept = [e for e in data["competition_reports"]
                if not e["submission_path"].startswith(dropped.name)]  # fmt: skip
        data["competition_reports"] = kept
        data["total_runs"] = len(kept)
        for total, flag in (("total_runs_with_submissions", "submission_exists"),
                            ("total_valid_submissions", "valid_submission"),
                            ("total_gold_medals", "gold_medal"),
                            ("total_silver_medals", "silver_medal"),
                            ("total_bronze_medals", "bronze_medal"),
                            ("total_above_median", "above_median")):  # fmt: skip
            data[total] = sum(bool(e[flag]) for e in kept)
        data["total_medals"] = sum(e["any_medal"] for e in kept)

    _flip_json(_report(group), without)


def _drop_middle(lines: list[str]) -> list[str]:
    return lines[:1] + lines[2:]


def _ghost_entry(group: Path) -> None:
    """A medal no run earned: a copy of the gold entry, pointing nowhere."""

    def add(data: dict) -> None:
        gold = next(e for e in data["competition_reports"] if e["gold_medal"])
        data["competition_reports"].append({**gold, "submission_path": "ghost/submission.csv"})
        for total in ("total_runs", "total_runs_with_submissions", "total_valid_submissions",
                      "total_medals", "total_gold_medals", "total_above_median"):  # fmt: skip
            data[total] += 1

    _flip_json(_report(group), add)


def _regraded_twice(group: Path) -> None:
    """The losing run graded again, as gold, beside its true entry."""

    def add(data: dict) -> None:
        lost = next(e for e in data["competition_reports"] if not e["gold_medal"])
        data["competition_reports"].append({**lost, "gold_medal": True, "any_medal": True})
        data["total_runs"] += 1
        data["total_gold_medals"] += 1
        data["total_medals"] += 1
        data["total_runs_with_submissions"] += 1
        data["total_valid_submissions"] += 1
        data["total_above_median"] += lost["above_median"]

    _flip_json(_report(group), add)


def _drop_and_redact(group: Path) -> None:
    """A dropped seed whose own records are then withheld from the export."""
    dropped = sorted(p.parent for p in group.glob(f"*/{ATTESTATION_FILE}"))[-1]
    sandbox = json.loads((dropped / "run.json").read_text())["attempts"][-1]["sandbox_id"]
    _drop_a_run(group)

    def redact(lines: list[str]) -> list[str]:
        records = [json.loads(line) for line in lines]
        for record in records:
            if (record["body"] or {}).get("sandbox_id") == sandbox:
                record["body"] = None
        return [json.dumps(r) for r in records]

    _chain_lines(group / AUDIT_CHAIN_FILE, redact)


def _reroll(group: Path) -> None:
    """A dropped seed passed off as an infrastructure failure retried by the kept one."""
    runs = sorted(p.parent for p in group.glob(f"*/{ATTESTATION_FILE}"))
    dropped = json.loads((runs[-1] / "run.json").read_text())["attempts"][-1]
    _drop_a_run(group)

    def retried(data: dict) -> None:
        data["attempts"].insert(0, {**dropped, "state": "failed",
                                    "failure_type": "infrastructure",
                                    "failure_reason": "engine_error"})  # fmt: skip

    _flip_json(runs[0] / "run.json", retried)


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "a ghost report entry": (_ghost_entry, "entries"),
    "a run graded twice": (_regraded_twice, "entries"),
    "a dropped run, its records withheld": (_drop_and_redact, "own records shown"),
    "a dropped run passed off as a retry": (_reroll, "earlier attempts"),
    "a budget that is not the attested one": (
        lambda g: _flip_json(
            _first_run(g) / "run.json", lambda r: r["budget"].update(time_limit_s=60)
        ),
        "budget",
    ),
    "a score in the grading report": (lambda g: _flip_json(_report(g), _set_score), "report"),
    "a total in the grading report": (lambda g: _flip_json(_report(g), _set_total), "totals"),
    "one submission byte": (_submission_byte, "submission bytes"),
    "an attested field, re-encoded": (
        lambda g: _envelope_payload(
            _first_run(g) / ATTESTATION_FILE,
            lambda s: s["predicate"].update(validation_calls=0),
        ),
        "signature",
    ),
    "the signed report's score": (
        lambda g: _envelope_payload(
            _first_run(g) / GRADING_STATEMENT_FILE,
            lambda s: s["predicate"]["report"].update(score=0.0),
        ),
        "signature",
    ),
    "swapped attestations": (_swap_attestations, "sandbox"),
    "an audit record's body": (
        lambda g: _chain_lines(g / AUDIT_CHAIN_FILE, lambda ls: _edit_body(ls, "grader_call")),
        "continuity",
    ),
    "a removed audit record": (
        lambda g: _chain_lines(g / AUDIT_CHAIN_FILE, _drop_middle),
        "continuity",
    ),
    "a dropped run": (_drop_a_run, "every run reported"),
    "a missing attestation": (
        lambda g: (_first_run(g) / ATTESTATION_FILE).unlink(),
        "signature",
    ),
}


def _replace_with(target: Path, make: Callable[[Path], None]) -> None:
    target.unlink()
    make(target)


HOSTILE: dict[str, Callable[[Path], None]] = {
    "chain line not an object": lambda g: _chain_lines(
        g / AUDIT_CHAIN_FILE, lambda ls: ["[1]", *ls]
    ),
    "chain seq infinite": lambda g: _chain_lines(
        g / AUDIT_CHAIN_FILE, lambda ls: [ls[0].replace('"seq":1,', '"seq":Infinity,', 1), *ls[1:]]
    ),
    "chain nested deeply": lambda g: (g / AUDIT_CHAIN_FILE).write_text("[" * 200000),
    "chain not utf-8": lambda g: (g / AUDIT_CHAIN_FILE).write_bytes(b"\xff\xfe" * 10),
    "attestation a link to /dev/zero": lambda g: _replace_with(
        _first_run(g) / ATTESTATION_FILE, lambda p: p.symlink_to("/dev/zero")
    ),
    "grading report a fifo": lambda g: _replace_with(_report(g), os.mkfifo),
    "declared calls not numbers": lambda g: _flip_json(
        g / "metadata.json", lambda m: m.update(declared_grader_calls=[{}])
    ),
    "run.json nested deeply": lambda g: (_first_run(g) / "run.json").write_text("[" * 200000),
}


async def test_a_run_group_verifies_and_each_tampering_is_caught(local, open_tmp) -> None:  # noqa: F811
    group = await run_group(local, open_tmp / "runs")
    code, keys_text = await cli(local, "keys")
    assert code == 0 and keys_text.startswith("keyid: ") and "BEGIN PUBLIC KEY" in keys_text
    keys = open_tmp / "keys.pem"
    keys.write_text(keys_text)
    code, output = await cli(local, "verify", str(group), "--keys", str(keys), "--regrade")
    assert code == 0, output
    assert "verified:" in output and "FAILED" not in output
    assert output.count("regrade") == 2  # both runs' submissions graded again, alike
    # The evidence is there: two attested runs, their grading statements, the chain.
    for run_dir in sorted(p.parent for p in group.glob(f"*/{ATTESTATION_FILE}")):
        assert (run_dir / GRADING_STATEMENT_FILE).is_file()
    chain = read_chain((group / AUDIT_CHAIN_FILE).read_text())
    kinds = {(r.body or {}).get("rpc") or (r.body or {}).get("event") for r in chain}
    assert {"created", "launching", "finished", "GradeSubmission"} <= kinds
    # One run on its own verifies too, and so does the JSON form of the keys.
    code, json_keys = await cli(local, "keys", "--json")
    (open_tmp / "keys.json").write_text(json_keys)
    code, output = await cli(
        local, "verify", str(_first_run(group)), "--keys", str(open_tmp / "keys.json")
    )
    assert code == 0, output

    for name, (tamper, check) in TAMPERING.items():
        copy = open_tmp / "tampered" / name.replace(" ", "-").replace("'", "")
        shutil.copytree(group, copy)
        tamper(copy)
        code, output = await cli(local, "verify", str(copy), "--keys", str(keys))
        assert code == 1, f"{name}: not caught\n{output}"
        failed = [line for line in output.splitlines() if "FAILED" in line]
        assert any(check in line for line in failed), f"{name}: {check!r} not named\n{output}"

    # Hostile files end in a failed check (exit 1), never a traceback or a hang.
    for name, attack in HOSTILE.items():
        copy = open_tmp / "hostile" / name.replace(" ", "-")
        shutil.copytree(group, copy)
        attack(copy)
        code, output = await asyncio.wait_for(
            cli(local, "verify", str(copy), "--keys", str(keys)), 60
        )
        assert code == 1, f"{name}: exit {code}\n{output}"
        assert "Traceback" not in output and "FAILED" in output, f"{name}\n{output}"

    # Another deployment's keys verify nothing, and keys inside PATH are never used.
    other = open_tmp / "other.pem"
    other.write_text(keys_text.replace(keys_text.split("\n")[0], "keyid: " + "0" * 64))
    code, output = await cli(local, "verify", str(group), "--keys", str(other))
    assert code == 2 and "keyid is not the sha256" in output


async def test_scoring_while_a_sandbox_runs_is_caught(local, open_tmp) -> None:  # noqa: F811
    release = open_tmp / "release"
    runs_dir = open_tmp / "runs"
    task = asyncio.create_task(run_group(local, runs_dir, "--env", f"RELEASE_FILE={release}"))
    await wait_until(lambda: runs_dir.exists() and any(runs_dir.glob("*/*/run.json")), None)
    # Seed 1 waits for the release file: meanwhile its lab scores a guess on the competition.
    await asyncio.sleep(3)
    # (Not the answers themselves: those bytes are seed 0's, graded after it ended.)
    guess = "PassengerId,Transported\n" + "".join(f"{i},True\n" for i in IDS)
    async with AsyncClient(grader=local.env["MLEB_GRADER_ADDR"], token=local.token) as client:
        scored = await client.score_submission(COMPETITION, guess.encode())
    assert scored.valid
    release.write_text("go")
    group = await task
    keys = open_tmp / "keys.pem"
    keys.write_text((await cli(local, "keys"))[1])
    code, output = await cli(local, "verify", str(group), "--keys", str(keys))
    assert code == 1, output
    assert "no test-set feedback" in output and "ScoreSubmission" not in output
    assert "scoring calls on" in " ".join(output.split())
    # Withholding that record's body from the export does not hide it: the attestation
    # lists it, signed.
    redacted = group.parent / "redacted"
    shutil.copytree(group, redacted)

    def redact(lines: list[str]) -> list[str]:
        records = [json.loads(line) for line in lines]
        for record in records:
            if (record["body"] or {}).get("rpc") == "ScoreSubmission":
                record["body"] = None
        return [json.dumps(r) for r in records]

    _chain_lines(redacted / AUDIT_CHAIN_FILE, redact)
    code, output = await cli(local, "verify", str(redacted), "--keys", str(keys))
    assert code == 1 and "scoring calls shown" in output, output
    # Declared in metadata.json, the same call is accepted.
    seqs = [
        r.seq for r in read_chain((group / AUDIT_CHAIN_FILE).read_text())
        if (r.body or {}).get("rpc") == "ScoreSubmission"
    ]  # fmt: skip
    _flip_json(group / "metadata.json", lambda m: m.update(declared_grader_calls=seqs))
    code, output = await cli(local, "verify", str(group), "--keys", str(keys))
    assert code == 0, output


def _only_the_wins(bundle: Path) -> None:
    """The split lists rewritten to leave out what went badly, figures made to match."""
    summary = json.loads((bundle / "summary.json").read_text())
    summary["splits_membership"]["low"] = []
    summary["any_medal_percentage"].pop("low", None)
    (bundle / "summary.json").write_text(json.dumps(summary))


BUNDLE_TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "a figure in the summary": (
        lambda b: _flip_json(
            b / "summary.json", lambda s: s["any_medal_percentage"]["low"].update(mean=100.0)
        ),
        "figures",
    ),
    "the README's row": (
        lambda b: (b / "README.md").write_text(
            (b / "README.md").read_text().replace("50.00 ± 50.00", "95.00 ± 1.00")
        ),
        "readme",
    ),
    "the split lists": (_only_the_wins, "figures"),
    "the disclosure": (
        lambda b: _flip_json(
            b / "summary.json", lambda s: s["disclosure"].update(test_set_feedback="none at all")
        ),
        "figures",
    ),
}


async def test_a_leaderboard_bundle_verifies_as_it_is(local, open_tmp) -> None:  # noqa: F811
    group = await run_group(local, open_tmp / "runs")
    out = open_tmp / "bundle"
    code, output = await cli(local, "report", str(group), "--leaderboard", str(out))
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    low = summary["any_medal_percentage"]["low"]
    assert low["mean"] == pytest.approx(50) and low["sem"] == pytest.approx(50)
    assert summary["resource_profile"]["attested_runs"] == 2
    assert summary["disclosure"]["test_set_feedback"] == "none"
    experiments = (out / "runs" / "run_group_experiments.csv").read_text().splitlines()
    assert experiments[0] == "experiment_id,run_group" and experiments[1].endswith(group.name)
    assert load_run_group(out / "runs" / group.name).entries
    keys = open_tmp / "keys.pem"
    keys.write_text((await cli(local, "keys"))[1])
    code, output = await cli(local, "verify", str(out), "--keys", str(keys))
    assert code == 0, output
    # The folder must be new; a second bundle into it is refused.
    code, output = await cli(local, "report", str(group), "--leaderboard", str(out))
    assert code == 2 and "exists already" in output
    # Without a trusted source for the split lists, a bundle cannot be verified.
    offline = {k: v for k, v in local.env.items() if k != "MLEB_REGISTRY_ADDR"}
    result = await asyncio.to_thread(
        runner.invoke, app, ["verify", str(out), "--keys", str(keys)], env=offline
    )
    assert result.exit_code == 1 and "not checked" in result.output, result.output
    for name, (tamper, check) in BUNDLE_TAMPERING.items():
        copy = open_tmp / "tampered-bundles" / name.replace(" ", "-")
        shutil.copytree(out, copy)
        tamper(copy)
        code, output = await cli(local, "verify", str(copy), "--keys", str(keys))
        failed = [line for line in output.splitlines() if "FAILED" in line]
        assert code == 1 and any(check in line for line in failed), f"{name}\n{output}"
