"""Preparing a sandbox's host folder: public data, description, instructions, output folders.

Public data comes from the registry's DownloadPublicData into the node's cache
(public_cache.py), keyed by the registry's digest of the file listing (so a node that holds
the data never loads the listing), and verified by sha256 as it arrives (public_fetch.py).
A backend that mounts it (Docker) shows the sealed entry itself read-only, with the
sandbox's description.md mounted over it, so a sandbox's start costs the same for one file
or a million; otherwise the files are hardlinked into the sandbox's own folder. The private
answers are never requested.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path
from typing import Protocol

from services.sandbox.backends.base import (
    DATA_DIR,
    HTTP_VALIDATE_PORT,
    SUBMISSION_DIR,
    HostLayout,
)
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.node.public_cache import PublicCache
from services.sandbox.node.public_fetch import (
    DESCRIPTION,
    RegistrySource,
    fetch_from_registry,
    refuse_description_folder,
)
from services.sandbox.node.public_store import PublicStore
from services.sandbox.records import Competition, DescriptionVariant

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


class CompetitionSource(RegistrySource, Protocol):
    async def get(self, competition_id: str, variant: DescriptionVariant) -> Competition: ...


def host_layout(root: Path, public_dir: Path | None = None) -> HostLayout:
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
        description_file=root / DESCRIPTION,
        public_dir=public_dir,
    )


def _cache_key(competition: Competition) -> str:
    # "v3": keyed on the listing digest; entries hold a description.md placeholder that
    # mounts rely on.
    return hashlib.sha256(f"v3:{competition.listing_digest}".encode()).hexdigest()[:20]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(source, target)


def _seal(staging: Path) -> None:
    """Folders 0755; and a description.md for each sandbox's own to be mounted over."""
    placeholder = staging / DESCRIPTION
    if not placeholder.exists():
        placeholder.touch(mode=0o444)
        placeholder.chmod(0o444)
    for current, dirs, _files in os.walk(staging):
        for name in dirs:
            (Path(current) / name).chmod(0o755)
    staging.chmod(0o755)


class LayoutBuilder:
    def __init__(
        self,
        competitions: CompetitionSource,
        cache: PublicCache,
        threads: WorkerThreads,
        public_store: PublicStore | None = None,
    ) -> None:
        self._competitions = competitions
        self._public_store = public_store
        self._cache = cache
        self._threads = threads
        self._locks: dict[str, asyncio.Lock] = {}

    async def public_data(self, competition: Competition, sandbox_id: str) -> Path:
        """The verified cache entry for the competition's current public files, pinned for
        the sandbox; concurrent sandboxes of one competition share one fetch."""
        key = _cache_key(competition)
        async with self._locks.setdefault(competition.id, asyncio.Lock()):
            if not await self._threads.run(self._cache.pin, competition.id, key, sandbox_id):
                await self._fetch(competition, key, sandbox_id)
        await self._threads.run(self._cache.evict)
        return self._cache.entry(competition.id, key)

    async def _fetch(self, competition: Competition, key: str, sandbox_id: str) -> None:
        staging = await self._threads.run(self._cache.staging, competition.id)
        folder = staging.path
        try:
            stored = None
            if self._public_store is not None:
                stored = await self._threads.run(self._public_store.load, competition, folder)
            if stored is not None:  # its listing already checked against the digest
                refuse_description_folder(competition.id, stored)
            else:
                await self._fetch_from_registry(competition, folder)
            await self._threads.run(_seal, folder)
            await self._threads.run(self._cache.seal, competition.id, key, folder, sandbox_id)
        finally:
            await self._threads.run(staging.close)

    async def _fetch_from_registry(self, competition: Competition, staging: Path) -> None:
        listing = await fetch_from_registry(
            self._competitions, competition.id, competition.listing_digest, staging, self._threads
        )
        if self._public_store:
            await self._threads.run(self._public_store.publish, competition, listing, staging)

    async def prepare(
        self,
        root: Path,
        competition: Competition,
        sandbox_id: str,
        *,
        shared_mount: bool,
        agent_uid: int | None = None,
    ) -> HostLayout:
        """The sandbox's folder. With `shared_mount` the backend mounts the cache entry
        itself; otherwise the public files are linked into the sandbox's own data folder."""
        cache = await self.public_data(competition, sandbox_id)
        layout = host_layout(root, cache if shared_mount else None)
        await self._threads.run(self._populate, layout, cache, competition, agent_uid)
        return layout

    @staticmethod
    def _write_description(target: Path, competition: Competition) -> None:
        target.unlink(missing_ok=True)
        target.write_text(competition.description, encoding="utf-8")
        target.chmod(0o444)

    @classmethod
    def _link_data(cls, layout: HostLayout, cache: Path, competition: Competition) -> None:
        # A retried start begins from a fresh data folder; outputs are kept.
        if layout.data_dir.exists():
            shutil.rmtree(layout.data_dir)
        layout.data_dir.mkdir()
        # The sealed entry holds exactly the verified files (and the placeholder, which
        # the sandbox's own description replaces); it has no links to follow.
        for current, _dirs, files in os.walk(cache):
            folder = layout.data_dir / Path(current).relative_to(cache)
            folder.mkdir(exist_ok=True)
            for name in files:
                _link_or_copy(Path(current) / name, folder / name)
        cls._write_description(layout.data_dir / DESCRIPTION, competition)
        for current, dirs, _files in os.walk(layout.data_dir):
            for name in dirs:
                (Path(current) / name).chmod(0o755)
        layout.data_dir.chmod(0o755)

    @classmethod
    def _populate(
        cls, layout: HostLayout, cache: Path, competition: Competition, agent_uid: int | None
    ) -> None:
        root = layout.root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        if layout.public_dir is None:
            cls._link_data(layout, cache, competition)
        else:
            cls._write_description(layout.description_file, competition)
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
