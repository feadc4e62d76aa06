"""Image references, parsed with the grammar of Docker's distribution/reference package.

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] remote-name          (at most 255 characters)
    domain           := host [":" port-number]
    host             := domain-name | "[" IPv6address "]"
    domain-name      := domain-component ["." domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    remote-name      := path-component ["/" path-component]*
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex

Stricter than the grammar where the Docker daemon is (observed on this engine): a digest is
sha256, sha384 or sha512 with exactly its number of lower-case hex digits, and the first
component is a domain only when it has a "." or a ":" or is "localhost" (so `Foo/bar` is an
upper-case repository, which the daemon refuses). The repository path is always lower case,
and a bare 64-hex-digit name (an image id) is refused.
A reference is checked here so that an agent's typo is refused at create, never met later
as an engine failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_TOTAL_LENGTH_MAX = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"(sha256|sha384|sha512):([a-f0-9]+)"

_REMOTE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)
_ANCHORED_HEX64 = re.compile(r"[a-f0-9]{64}", re.ASCII)
_KNOWN_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


class InvalidReference(ValueError):
    """A reference the grammar does not allow; the message says what is wrong."""


@dataclass(frozen=True)
class ImageReference:
    domain: str  # "" when the reference names none (Docker Hub)
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path


def _looks_like_domain(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost"


def parse_image_reference(text: str) -> ImageReference:
    """Parses `text`, or raises InvalidReference naming the problem."""
    if not text:
        raise InvalidReference("empty reference")
    if not text.isascii() or any(c.isspace() or not c.isprintable() for c in text):
        raise InvalidReference("has spaces, control or non-ASCII characters")
    rest, _, digest = text.partition("@")
    if "@" in digest:
        raise InvalidReference("more than one '@'")
    if digest:
        found = _DIGEST_RE.fullmatch(digest)
        if not found:
            raise InvalidReference(
                "the digest is not sha256, sha384 or sha512 followed by ':' and lower-case hex"
            )
        algorithm, hex_part = found.groups()
        expected = _KNOWN_DIGEST_LENGTHS[algorithm]
        if len(hex_part) != expected:
            raise InvalidReference(f"a {algorithm} digest has {expected} hex digits")
    # A tag follows the last ':' after the last '/'; a ':' before it is the domain's port.
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference(
                "the tag must be letters, digits, '_', '.' or '-' (at most 128, not starting "
                "with '.' or '-')"
            )
    if not rest:
        raise InvalidReference("no repository name")
    if len(rest) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"the name is longer than {NAME_TOTAL_LENGTH_MAX} characters")
    first, sep, remainder = rest.partition("/")
    domain, path = (first, remainder) if sep and _looks_like_domain(first) else ("", rest)
    if domain and not _DOMAIN_RE.fullmatch(domain):
        raise InvalidReference("the registry host is not a valid host[:port]")
    if not _REMOTE.fullmatch(path):
        if path.lower() != path and _REMOTE.fullmatch(path.lower()):
            raise InvalidReference("the repository name must be lower case")
        raise InvalidReference(
            "the repository name must be '/'-separated components of lower-case letters and "
            "digits, joined by '.', '_', '__' or '-'"
        )
    if not domain and not tag and not digest and _ANCHORED_HEX64.fullmatch(path):
        raise InvalidReference("a 64-hex-digit name is an image id, not a repository name")
    return ImageReference(domain, path, tag, digest)
