"""Preparing a sandbox's host folder: public data, description, instructions, output folders.

Public data comes from the registry's DownloadPublicData into a per-competition cache keyed
by the file list's checksums, is verified by sha256 once, and is then hardlinked into each
sandbox. The private answers are never requested.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from services.common.errors import MlebError
from services.sandbox.backends.base import (
    DATA_DIR,
    HTTP_VALIDATE_PORT,
    SUBMISSION_DIR,
    HostLayout,
)
from services.sandbox.records import Competition, DescriptionVariant
from services.sandbox.registry_client import safe_relative
from services.sandbox.threads import WorkerThreads

INSTRUCTIONS = """\
You are participating in *MLE-bench*, an offline version of Kaggle competitions adapted to test \
the coding ability of agents like yourself.

You will be given a machine learning task. You must solve the task by training a model and \
running the model on the test set to produce a submission file. You may not hand-label the data \
to produce a submission file.

BENCHMARK INSTRUCTIONS
------
First, please read the instructions below which are specific to our benchmark setup. Note, \
these instructions can be found again in `/home/instructions.txt`.

- **Competition-specific instructions**: The instructions for the competition are available in \
`{data}/description.md`. Read this file to understand the problem setup for the competition you \
are currently solving.
- **Dataset**: The dataset files for the competition are available in `{data}/`.
- **Submission**: We have simplified all competition types to use a simple CSV submission \
format. Regardless of what the competition instructions say, you MUST produce a submission file \
at `{submission}/submission.csv`. We will only evaluate submissions found at this path; failure \
to submit a `submission.csv` at this path will result in a failed attempt.
- **Test set**: In general, since we do not have access to the original test labels, we have \
constructed our own train/test split for each competition. As such, the dataset you see in \
`{data}/` may differ slightly from what is described in the competition instructions. \
Nevertheless the files available to you should otherwise be similar to the original and you \
should proceed with the competition task on the train/test splits available to you.
- **Submission checker**: We provide a tool for checking the validity of your submission file, \
in the form of a server endpoint at `http://localhost:{port}/validate`. If you post a submission \
file to the server (e.g. `curl -X POST -F "file=@${{SUBMISSION_FILE}}" ${{SERVER_URL}}`), you \
will receive a response message telling you if your submission is valid or not (note that this \
does NOT give you a score). For your convenience, we provide a script \
`/home/validate_submission.sh` which can help you make this submission to the validation \
server. The same check is available over gRPC at the address in `MLEB_GRADER_ADDR` \
(GraderService.ValidateSubmission, with the token in `MLEB_SANDBOX_TOKEN` as a bearer token; \
the `mleb-validate` command does this for you when it is installed).
- **Time limit**: The sandbox is stopped when its time limit runs out. Whatever is in \
`{submission}/submission.csv` at that moment is collected, so write a valid submission early \
and improve it.
- **Cheating**: You are not allowed to view others' solutions to this competition. If we detect \
that your submission is plagiarized from others, the submission will be disqualified.

Your submission will be graded based on the metric in the competition-specific instructions. \
Your goal is to achieve the best score possible on the competition task.

Wherever there is a conflict between the points above and the competition-specific \
instructions in `{data}/description.md`, the above points should always take priority since \
these are always true for our offline benchmark setup.
"""

# MLE-bench's script, plus a Unix-socket route (local backend) and a fallback without curl.
VALIDATE_SCRIPT = """\
#!/bin/bash

# This script is a tool for agents to submit a file to the grading server for validation.

# validate_submission.sh
# Usage: ./validate_submission.sh user_submission.csv

SUBMISSION_FILE=$1
SERVER_URL="http://localhost:{port}/validate"

if [ -z "$SUBMISSION_FILE" ]; then
    echo "Usage: $0 <submission_file>"
    exit 1
fi

if [ ! -f "$SUBMISSION_FILE" ]; then
    echo "File $SUBMISSION_FILE does not exist."
    exit 1
fi

if command -v curl >/dev/null 2>&1; then
    if [ -n "$MLEB_VALIDATE_SOCKET" ]; then
        curl -s -X POST --unix-socket "$MLEB_VALIDATE_SOCKET" -F "file=@${{SUBMISSION_FILE}}" \\
            "http://localhost/validate"
    else
        curl -s -X POST -F "file=@${{SUBMISSION_FILE}}" ${{SERVER_URL}}
    fi
elif command -v mleb-validate >/dev/null 2>&1; then
    mleb-validate "$SUBMISSION_FILE"
else
    echo "curl is not installed in this image, so the HTTP endpoint cannot be reached from"
    echo "this script. Validate over gRPC instead: call GraderService.ValidateSubmission at"
    echo "MLEB_GRADER_ADDR=$MLEB_GRADER_ADDR with 'authorization: Bearer \\$MLEB_SANDBOX_TOKEN'"
    echo "(pip's 'mleb' package provides the mleb-validate command for this)."
    exit 2
fi
"""

_HASH_CHUNK = 1 << 20


class CompetitionSource(Protocol):
    async def get(self, competition_id: str, variant: DescriptionVariant) -> Competition: ...

    async def download(self, competition_id: str, dest: Path) -> None: ...


class RegistryFetchError(Exception):
    """The public data could not be fetched or did not verify."""


def host_layout(root: Path) -> HostLayout:
    """The fixed shape of a sandbox's host folder."""
    return HostLayout(
        root=root,
        data_dir=root / "data",
        submission_dir=root / "submission",
        logs_dir=root / "logs",
        code_dir=root / "code",
        instructions_file=root / "instructions.txt",
        validate_script=root / "validate_submission.sh",
        sockets_dir=root / "sockets",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_key(competition: Competition) -> str:
    listing = sorted((f.path, f.sha256) for f in competition.public_files)
    return hashlib.sha256(repr(listing).encode()).hexdigest()[:20]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(source, target)


class LayoutBuilder:
    def __init__(
        self, competitions: CompetitionSource, cache_dir: Path, threads: WorkerThreads
    ) -> None:
        self._competitions = competitions
        self._cache_dir = cache_dir
        self._threads = threads
        self._locks: dict[str, asyncio.Lock] = {}

    async def public_data(self, competition: Competition) -> Path:
        """The verified cache folder for the competition's current public files."""
        final = self._cache_dir / competition.id / _cache_key(competition)
        async with self._locks.setdefault(competition.id, asyncio.Lock()):
            if final.is_dir():
                return final
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".download-", dir=final.parent))
            try:
                try:
                    await self._competitions.download(competition.id, staging)
                except MlebError as exc:
                    raise RegistryFetchError(exc.message) from exc
                await self._threads.run(self._verify_and_seal, competition, staging)
                try:
                    staging.rename(final)
                except OSError:  # another process sealed the same content first
                    if not final.is_dir():
                        raise
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        return final

    @staticmethod
    def _verify_and_seal(competition: Competition, staging: Path) -> None:
        for expected in competition.public_files:
            path = staging / safe_relative(expected.path)
            if not path.is_file():
                raise RegistryFetchError(f"public file {expected.path} was not received")
            if path.stat().st_size != expected.size_bytes or _sha256(path) != expected.sha256:
                raise RegistryFetchError(f"public file {expected.path} failed its sha256 check")
            # Read-only, since the same inode is linked into every sandbox.
            path.chmod(0o444)
        for current, dirs, _files in os.walk(staging):
            for name in dirs:
                (Path(current) / name).chmod(0o755)
        staging.chmod(0o755)

    async def prepare(
        self, root: Path, competition: Competition, agent_uid: int | None = None
    ) -> HostLayout:
        cache = await self.public_data(competition)
        layout = host_layout(root)
        await self._threads.run(self._populate, layout, cache, competition, agent_uid)
        return layout

    @staticmethod
    def _populate(
        layout: HostLayout, cache: Path, competition: Competition, agent_uid: int | None
    ) -> None:
        root = layout.root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        # A retried start begins from a fresh data folder; outputs are kept.
        if layout.data_dir.exists():
            shutil.rmtree(layout.data_dir)
        layout.data_dir.mkdir()
        for public in competition.public_files:
            target = layout.data_dir / safe_relative(public.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(cache / safe_relative(public.path), target)
        description = layout.data_dir / "description.md"
        description.unlink(missing_ok=True)
        description.write_text(competition.description, encoding="utf-8")
        description.chmod(0o444)
        for current, dirs, _files in os.walk(layout.data_dir):
            for name in dirs:
                (Path(current) / name).chmod(0o755)
        layout.data_dir.chmod(0o755)
        for folder in (layout.submission_dir, layout.logs_dir, layout.code_dir):
            folder.mkdir(exist_ok=True)
            if agent_uid is not None and os.geteuid() == 0:
                os.chown(folder, agent_uid, agent_uid)
                folder.chmod(0o755)
            else:
                # The image's user is unknown until it runs: let any uid write.
                folder.chmod(0o777)
        layout.sockets_dir.mkdir(exist_ok=True)
        layout.sockets_dir.chmod(0o755)
        layout.instructions_file.write_text(
            INSTRUCTIONS.format(data=DATA_DIR, submission=SUBMISSION_DIR, port=HTTP_VALIDATE_PORT),
            encoding="utf-8",
        )
        layout.instructions_file.chmod(0o444)
        layout.validate_script.write_text(VALIDATE_SCRIPT.format(port=HTTP_VALIDATE_PORT))
        layout.validate_script.chmod(0o555)
