"""Grading bundles: parsed answers plus leaderboard, cached by content digest.

The cache is the grader's only memory between requests, and it is content-addressed: any
replica fetching the same competition ends up with the same bytes under the same digest,
so which replica serves a call never changes its result.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cachetools
import numpy as np
import pandas as pd
import structlog
from mleb.ranking import LeaderboardState, leaderboard_state_of

from services.common.errors import FailedPreconditionError, NotFoundError
from services.grader.competitions import get_spec
from services.grader.competitions.base import AnswersFormat, CompetitionSpec
from services.grader.competitions.id_order import ORDERS, freeze
from services.grader.generic_specs import GENERIC_METRICS, generic_spec
from services.grader.reading import read_answers, read_table

log = structlog.get_logger("mleb.grader")


@dataclass(frozen=True)
class GradingBundle:
    competition_id: str
    digest: str
    spec: CompetitionSpec
    answers: Any
    # Best first; None when no leaderboard is known.
    leaderboard_scores: Sequence[float] | None
    awards_medals: bool
    answers_size_bytes: int
    # What the parsed answers take in memory, and the most that grades may derive from them
    # and keep while they live (see answers_memory).
    memory_bytes: int
    derived_bytes_bound: int
    # What the registry holds; ranking follows the spec's declared direction instead.
    lower_is_better: bool | None = None
    # Why `leaderboard_scores` is None, when it is.
    leaderboard_state: LeaderboardState = LeaderboardState.PRESENT


@dataclass(frozen=True)
class LeaderboardInfo:
    # Best first; None when no leaderboard is known.
    scores: Sequence[float] | None
    awards_medals: bool
    lower_is_better: bool | None = None
    leaderboard_state: LeaderboardState | None = None


class BundleProvider(Protocol):
    async def get(self, competition_id: str) -> GradingBundle: ...

    async def leaderboard(self, competition_id: str) -> LeaderboardInfo:
        """What ranking needs, without the answers."""
        ...

    def used(self, bundle: GradingBundle) -> None:
        """A grade on the bundle has ended: what it derived from the answers now counts."""
        ...


@dataclass(frozen=True)
class MetricRef:
    """How the registry says a competition is graded (used when mleb has no spec of its own)."""

    name: str = ""
    id_columns: Sequence[str] = ()
    target_columns: Sequence[str] = ()


def spec_for(competition_id: str, metric: MetricRef = MetricRef()) -> CompetitionSpec:
    """MLE-bench's competitions by id; any other by its metric name and columns."""
    spec = get_spec(competition_id) or generic_spec(
        competition_id, metric.name, metric.id_columns, metric.target_columns
    )
    if spec is None:
        raise NotFoundError(
            f"mleb has no grader for competition {competition_id!r} (metric "
            f"{metric.name or 'unknown'!r}; metric-named competitions support "
            f"{', '.join(GENERIC_METRICS)} with one id column)",
            reason="NO_GRADER",
            metadata={"competition_id": competition_id, "metric": metric.name},
        )
    return spec


class ParsedAnswersCache:
    """LRU of parsed answers keyed by digest, bounded by what they hold in memory: the
    parsed answers, and what grades derive from them and keep while they live (the id
    orders, with their Arrow copies)."""

    def __init__(self, max_bytes: int) -> None:
        self._cache: cachetools.LRUCache[str, GradingBundle] = cachetools.LRUCache(
            maxsize=max_bytes, getsizeof=bundle_weight
        )
        self._lock = asyncio.Lock()
        self._latest: cachetools.LRUCache[str, str] = cachetools.LRUCache(maxsize=4096)

    def latest_digest(self, competition_id: str) -> str:
        return self._latest.get(competition_id, "")

    def get(self, digest: str) -> GradingBundle | None:
        return self._cache.get(digest)

    def put(self, bundle: GradingBundle) -> None:
        """Keeps the bundle if it fits with all that grades may derive from it, so that a
        bundle kept is never pushed out by its own grades (and fetched again on each)."""
        self._latest[bundle.competition_id] = bundle.digest
        needs = bundle.memory_bytes + bundle.derived_bytes_bound
        if needs <= self._cache.maxsize:
            self._cache[bundle.digest] = bundle
        else:  # parsed again on every call: the operator can raise the limit
            log.warning(
                "answers_not_cached",
                competition_id=bundle.competition_id,
                needs_bytes=needs,
                limit_bytes=self._cache.maxsize,
                setting="MLEB_ANSWERS_CACHE_BYTES",
            )

    def reweigh(self, bundle: GradingBundle) -> None:
        """Counts what a grade derived from the bundle's answers: the least recently used
        bundles make room."""
        if self._cache.get(bundle.digest) is not bundle:
            return
        try:
            self._cache[bundle.digest] = bundle
        except ValueError:  # past the bound it was admitted under: never expected
            del self._cache[bundle.digest]

    @property
    def held_bytes(self) -> int:
        return int(self._cache.currsize)

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock


def bundle_weight(bundle: GradingBundle) -> int:
    derived = ORDERS.nbytes_of(bundle.answers) if isinstance(bundle.answers, pd.DataFrame) else 0
    return max(1, bundle.memory_bytes + derived)


def answers_memory(answers: Any) -> tuple[int, int]:
    """What parsed answers hold in memory, and a bound on what grades may derive from them.

    A frame's arrays with its Python strings (a string shared by several cells is counted each
    time: an overestimate). Each int64 or text column may get an id order (16 bytes a row) and
    text ones its two Arrow copies (each cell's UTF-8 bytes and a 4-byte offset, less than
    its Python string). JSON answers' objects are walked; nothing is derived from them.
    """
    if isinstance(answers, pd.DataFrame):
        usage = answers.memory_usage(index=True, deep=True).to_numpy()
        derived = 0
        for dtype, held in zip(answers.dtypes, usage[1:], strict=True):
            text = dtype == np.dtype(object)
            if text or dtype == np.dtype(np.int64):
                derived += 16 * len(answers) + (2 * int(held) if text else 0)
        return int(usage.sum()), derived
    held, pending = 0, [answers]
    while pending:
        value = pending.pop()
        held += sys.getsizeof(value)
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return held, 0


def bundle_digest(answers: bytes, leaderboard: Sequence[float] | None) -> str:
    digest = hashlib.sha256(answers)
    digest.update(repr(list(leaderboard) if leaderboard is not None else None).encode())
    return digest.hexdigest()


async def parse_bundle(
    competition_id: str,
    digest: str,
    answers: bytes,
    answers_format: AnswersFormat,
    leaderboard_scores: Sequence[float] | None,
    awards_medals: bool,
    lower_is_better: bool | None = None,
    metric: MetricRef = MetricRef(),
    leaderboard_state: LeaderboardState | None = None,
) -> GradingBundle:
    spec = spec_for(competition_id, metric)
    if spec.answers_format != answers_format:
        raise FailedPreconditionError(
            f"answers for {competition_id!r} are {answers_format}, the grader expects "
            f"{spec.answers_format}",
            reason="ANSWERS_FORMAT_MISMATCH",
        )
    parsed = await asyncio.to_thread(read_answers, answers, answers_format)
    if isinstance(parsed, pd.DataFrame):
        # Shared by every call from now on: read-only, so per-answers caches stay valid
        # (specs never see the difference, since copy-on-write copies before writing).
        freeze(parsed)
    memory_bytes, derived_bound = await asyncio.to_thread(answers_memory, parsed)
    return GradingBundle(
        competition_id=competition_id,
        digest=digest,
        spec=spec,
        answers=parsed,
        leaderboard_scores=leaderboard_scores,
        awards_medals=awards_medals,
        answers_size_bytes=len(answers),
        memory_bytes=memory_bytes,
        derived_bytes_bound=derived_bound,
        lower_is_better=lower_is_better,
        leaderboard_state=leaderboard_state
        or leaderboard_state_of("", len(leaderboard_scores or [])),
    )


_LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


def read_leaderboard_scores(path: Path) -> list[float]:
    with path.open("rb") as handle:
        pointer = handle.read(len(_LFS_POINTER)) == _LFS_POINTER
    if pointer:
        raise FailedPreconditionError(
            f"leaderboard {path} is a Git LFS pointer, not the file's content; run "
            "`git lfs pull` in its checkout",
            reason="GIT_LFS_POINTER",
        )
    table = read_table(path)
    if "score" not in table.columns:
        raise FailedPreconditionError(
            f"leaderboard {path} has no 'score' column", reason="BAD_LEADERBOARD"
        )
    return [float(s) for s in table["score"]]


class LocalBundleProvider:
    """Answers and leaderboard from explicit files: offline grading with no registry."""

    def __init__(
        self,
        competition_id: str,
        answers_path: Path,
        leaderboard_path: Path | None = None,
        awards_medals: bool = True,
    ) -> None:
        self._competition_id = competition_id
        self._answers_path = answers_path
        self._leaderboard_path = leaderboard_path
        self._awards_medals = awards_medals
        self._bundle: GradingBundle | None = None

    async def leaderboard(self, competition_id: str) -> LeaderboardInfo:
        self._check(competition_id)
        if self._leaderboard_path is None:
            return LeaderboardInfo(
                None, self._awards_medals, leaderboard_state=LeaderboardState.MISSING
            )
        return LeaderboardInfo(read_leaderboard_scores(self._leaderboard_path), self._awards_medals)

    async def get(self, competition_id: str) -> GradingBundle:
        self._check(competition_id)
        if self._bundle is None:
            answers = self._answers_path.read_bytes()
            info = await self.leaderboard(competition_id)
            answers_format: AnswersFormat = (
                "jsonl" if self._answers_path.suffix == ".jsonl" else "csv"
            )
            self._bundle = await parse_bundle(
                competition_id,
                bundle_digest(answers, info.scores),
                answers,
                answers_format,
                info.scores,
                info.awards_medals,
            )
        return self._bundle

    def used(self, bundle: GradingBundle) -> None:
        return None  # one competition's answers, held for the process's life

    def _check(self, competition_id: str) -> None:
        if competition_id != self._competition_id:
            raise NotFoundError(
                f"only {self._competition_id!r} is available offline", reason="NOT_FOUND"
            )
