"""The uid:gid an agent runs as: chosen by the service, never spelled by the image.

An image's USER is text that the runtime parses its own way: "00", "+0", "0:0" and a name
that the image's own /etc/passwd maps to uid 0 all mean root. So the service resolves the
user to numbers itself, replaces uid 0 or gid 0 with its own default, and always hands the
engine an explicit "uid:gid". With an explicit group the engine also adds no supplementary
groups from the image's /etc/group, so group 0 cannot come in that way either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_UID = DEFAULT_GID = 1000
# What the service accepts as a number: plain digits. Anything else is a name.
_NUMERIC = re.compile(r"[0-9]{1,10}")
# The kernel's largest valid id is 2**32 - 2; runtimes reserve more at the top.
_MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class AgentIdentity:
    uid: int
    gid: int
    # Why the image's own user was not taken as it is (empty when it was).
    note: str = ""

    @property
    def engine_user(self) -> str:
        return f"{self.uid}:{self.gid}"


def _default(note: str) -> AgentIdentity:
    return AgentIdentity(DEFAULT_UID, DEFAULT_GID, note)


def needs_image_files(image_user: str) -> bool:
    """Whether resolving the user needs the image's /etc/passwd and /etc/group."""
    user, _, group = image_user.partition(":")
    return bool(user) and not (_NUMERIC.fullmatch(user) and _NUMERIC.fullmatch(group))


def _passwd(text: str) -> tuple[dict[str, tuple[int, int]], dict[int, int]]:
    """Users by name (uid, gid), and primary gids by uid; the first entry wins, as in libc."""
    by_name: dict[str, tuple[int, int]] = {}
    gid_of: dict[int, int] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 4 or not (_NUMERIC.fullmatch(fields[2]) and _NUMERIC.fullmatch(fields[3])):
            continue
        uid, gid = int(fields[2]), int(fields[3])
        by_name.setdefault(fields[0], (uid, gid))
        gid_of.setdefault(uid, gid)
    return by_name, gid_of


def _groups(text: str) -> dict[str, int]:
    groups: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and _NUMERIC.fullmatch(fields[2]):
            groups.setdefault(fields[0], int(fields[2]))
    return groups


def resolve(image_user: str, passwd: str = "", group: str = "") -> AgentIdentity:
    """The identity for an image whose USER is `image_user`, given its account files."""
    user, _, group_name = image_user.partition(":")
    if not user:
        return _default("the image sets no user")
    by_name, gid_of = _passwd(passwd)
    if _NUMERIC.fullmatch(user):
        uid = int(user)
        gid = gid_of.get(uid, uid)
    elif user in by_name:
        uid, gid = by_name[user]
    else:
        return _default(f"the image's user {user!r} is not in its /etc/passwd")
    if group_name:
        if _NUMERIC.fullmatch(group_name):
            gid = int(group_name)
        elif group_name in (groups := _groups(group)):
            gid = groups[group_name]
        else:
            return _default(f"the image's group {group_name!r} is not in its /etc/group")
    if uid == 0 or uid > _MAX_ID:
        return _default(f"the image's user {image_user!r} is uid {uid}")
    if gid == 0 or gid > _MAX_ID:
        return AgentIdentity(uid, DEFAULT_GID, f"the image's user {image_user!r} has gid {gid}")
    return AgentIdentity(uid, gid)
