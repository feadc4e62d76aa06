"""A limit for every string field of every request, checked before any handler runs.

Each string field of the three services' request messages (nested messages, repeated fields
and maps included) has an entry below, keyed by the field's full protobuf name; a unit test
walks the service descriptors and fails on any field without one, and docs/limits.md is
checked against this table. A string over its limit, a NUL character anywhere (PostgreSQL
cannot store one, runc cannot pass one) or a list with too many entries is refused with
INVALID_ARGUMENT and a field violation naming the request path. Values are never quoted
back: they may be secrets, and error details travel in size-limited metadata. Timestamps and
durations must be in the range protobuf defines for them.

The limits are the database columns' widths, or what a caller can reasonably need where
nothing is stored, so a request behaves the same on SQLite and on PostgreSQL. Where an
operator sets the bound (`setting`), the service checks it and this table only refuses NUL.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import invalid_field, shown


@dataclass(frozen=True)
class Limit:
    chars: int | None  # None: the sandbox service checks the operator's setting instead
    items: int | None = None  # entries of a repeated field or map
    setting: str = ""  # the MLEB_* variable that bounds it, where there is one


COMPETITION_ID = Limit(128)
SANDBOX_ID = Limit(40)
PAGE_TOKEN = Limit(1024)
LABEL_KEY = Limit(128, items=64)
LABEL_VALUE = Limit(256)
OWNER = Limit(256)

_G = "mleb.grader.v1."
_R = "mleb.registry.v1."
_S = "mleb.sandbox.v1."

LIMITS: dict[str, Limit] = {
    _G + "SubmissionHeader.competition_id": COMPETITION_ID,
    # Reports keep the path verbatim.
    _G + "SubmissionHeader.submission_path": Limit(4096),
    _G + "RankScoreRequest.competition_id": COMPETITION_ID,
    _R + "ListCompetitionsRequest.split": Limit(64),
    _R + "ListCompetitionsRequest.category": Limit(128),
    _R + "ListCompetitionsRequest.page_token": PAGE_TOKEN,
    _R + "GetCompetitionRequest.competition_id": COMPETITION_ID,
    _R + "ListPublicFilesRequest.competition_id": COMPETITION_ID,
    # Holds a path of up to 1,024 characters, JSON-escaped (up to 12 per character), base64.
    _R + "ListPublicFilesRequest.page_token": Limit(16384),
    _R + "GetLeaderboardRequest.competition_id": COMPETITION_ID,
    _R + "DownloadPublicDataRequest.competition_id": COMPETITION_ID,
    _R + "DownloadPublicDataRequest.paths": Limit(1024, items=100_000),
    _R + "GetGradingBundleRequest.competition_id": COMPETITION_ID,
    _R + "GetGradingBundleRequest.known_digest": Limit(128),
    _R + "RevokeTokenRequest.token": Limit(16384),
    _R + "RevokeTokenRequest.token_id": Limit(128),
    _R + "RevokeTokenRequest.sandbox_id": Limit(128),
    _R + "RevokeTokenRequest.reason": Limit(512),
    _R + "AuditEvent.kind": Limit(32),
    _R + "AuditEvent.fields_json": Limit(64 * 1024),
    _S + "CreateSandboxRequest.competition_id": COMPETITION_ID,
    _S + "CreateSandboxRequest.image": Limit(512),
    _S + "CreateSandboxRequest.command": Limit(
        None, setting="MLEB_SANDBOX_MAX_COMMAND_ARGS, MLEB_SANDBOX_MAX_COMMAND_BYTES"
    ),
    _S + "CreateSandboxRequest.EnvEntry.key": Limit(256, setting="MLEB_SANDBOX_MAX_ENV_VARS"),
    _S + "CreateSandboxRequest.EnvEntry.value": Limit(None, setting="MLEB_SANDBOX_MAX_ENV_BYTES"),
    _S + "CreateSandboxRequest.SecretEnvEntry.key": Limit(256, setting="MLEB_SANDBOX_MAX_ENV_VARS"),
    _S + "CreateSandboxRequest.SecretEnvEntry.value": Limit(
        None, setting="MLEB_SANDBOX_MAX_ENV_BYTES"
    ),
    _S + "Resources.gpu_uuids": Limit(128, items=64),
    _S + "NetworkPolicy.allowed_hosts": Limit(261, setting="MLEB_SANDBOX_MAX_ALLOWED_HOSTS"),
    _S + "CreateSandboxRequest.LabelsEntry.key": LABEL_KEY,
    _S + "CreateSandboxRequest.LabelsEntry.value": LABEL_VALUE,
    _S + "CreateSandboxRequest.owner": OWNER,
    _S + "CreateSandboxRequest.idempotency_key": Limit(256),
    _S + "GetSandboxRequest.sandbox_id": SANDBOX_ID,
    _S + "ListSandboxesRequest.LabelsEntry.key": LABEL_KEY,
    _S + "ListSandboxesRequest.LabelsEntry.value": LABEL_VALUE,
    _S + "ListSandboxesRequest.owner": OWNER,
    _S + "ListSandboxesRequest.competition_id": COMPETITION_ID,
    _S + "ListSandboxesRequest.page_token": PAGE_TOKEN,
    _S + "StreamLogsRequest.sandbox_id": SANDBOX_ID,
    _S + "StopSandboxRequest.sandbox_id": SANDBOX_ID,
    _S + "StopSandboxRequest.reason": Limit(1024),
    _S + "DownloadArtifactsRequest.sandbox_id": SANDBOX_ID,
}


def _text(path: str, value: str, limit: Limit) -> None:
    if limit.chars is not None and len(value) > limit.chars:
        raise invalid_field(path, f"longer than {limit.chars} characters")
    if "\x00" in value:
        raise invalid_field(path, "contains a NUL character")


def _count(path: str, count: int, limit: Limit) -> None:
    if limit.items is not None and count > limit.items:
        raise invalid_field(path, f"more than {limit.items} entries")


def _limit(field: FieldDescriptor) -> Limit:
    return LIMITS[field.full_name]


def _map(path: str, field: FieldDescriptor, entries) -> None:
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    strings = key_field.type == FieldDescriptor.TYPE_STRING
    if strings:
        _count(path, len(entries), _limit(key_field))
    for key, value in entries.items():
        if strings:
            _text(path, key, _limit(key_field))
        # The key's length is checked by now; it is quoted like any echoed value.
        where = f"{path}.{key}" if key.isidentifier() else f"{path}[{shown(key)}]"
        if value_field.type == FieldDescriptor.TYPE_STRING:
            _text(where, value, _limit(value_field))
        elif value_field.type == FieldDescriptor.TYPE_MESSAGE:
            _message(where + ".", value)


# The ranges protobuf's JSON mapping and every runtime accept: 0001-01-01 to 9999-12-31, and
# +-10,000 years; outside them conversions to datetime or timedelta raise.
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
_DURATION_SECONDS = 315_576_000_000
_NANOS = 999_999_999


def _well_known(path: str, message: Message) -> None:
    name = message.DESCRIPTOR.full_name
    seconds, nanos = getattr(message, "seconds", 0), getattr(message, "nanos", 0)
    if name == "google.protobuf.Timestamp":
        low, high = _TIMESTAMP_SECONDS
        if not (low <= seconds <= high and 0 <= nanos <= _NANOS):
            raise invalid_field(path, "not a valid timestamp (years 1 to 9999)")
    elif name == "google.protobuf.Duration":
        mixed_signs = (seconds > 0 > nanos) or (seconds < 0 < nanos)
        if abs(seconds) > _DURATION_SECONDS or abs(nanos) > _NANOS or mixed_signs:
            raise invalid_field(path, "not a valid duration (at most 10,000 years)")


@functools.cache
def _checked_fields(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    """The string and message fields, in field-number order (ListFields' order). Bytes
    fields are never read: reading one copies it, and an upload chunk is a MiB."""
    kinds = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE)
    return tuple(sorted((f for f in descriptor.fields if f.type in kinds), key=lambda f: f.number))


def _message(prefix: str, message: Message) -> None:
    if not message.DESCRIPTOR.full_name.startswith("mleb."):
        _well_known(prefix.removesuffix("."), message)
        return
    for field in _checked_fields(message.DESCRIPTOR):
        singular_message = field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated
        if singular_message and not message.HasField(field.name):
            continue
        value = getattr(message, field.name)  # an unset string is "", which passes
        path = prefix + field.name
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                _map(path, field, value)
            elif field.is_repeated:
                for index, item in enumerate(value):
                    _message(f"{path}[{index}].", item)
            else:
                _message(path + ".", value)
        elif field.type == FieldDescriptor.TYPE_STRING:
            limit = _limit(field)
            if field.is_repeated:
                _count(path, len(value), limit)
                for index, item in enumerate(value):
                    _text(f"{path}[{index}]", item, limit)
            else:
                _text(path, value, limit)


def check_request(message: Message) -> None:
    """Raises InvalidArgumentError for the first string field outside its limit."""
    _message("", message)
