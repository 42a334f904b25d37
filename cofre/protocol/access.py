"""Who may call what: roles, and the client keys that carry one.

The cluster token is the admin bootstrap. Every other client holds a key made by
``POST /v1/keys`` with one role; each manager route declares the least role it needs
(``Api.route(..., role=)``). Roles are ordered: ``read`` < ``backup`` < ``admin``, and a
role allows what every lower one does.

A key reads ``cofre_<id>_<secret>``: the id names its catalog row (looked up, never scanned),
the secret is 256 random bits of which the manager keeps only a sha256. A fast hash is right
here and a slow password hash (bcrypt, argon2) is not: those slow down guessing a low-entropy
password, and no guessing reaches a 256-bit random secret, while every request checks a key.
The digest is compared in constant time so a wrong key's timing tells nothing of the right one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    READ = "read"
    BACKUP = "backup"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        """Whether a holder of this role may call a route that needs ``needed``."""
        return self.rank >= needed.rank


_RANK = {Role.READ: 0, Role.BACKUP: 1, Role.ADMIN: 2}

# What each role is for, in one line (the OpenAPI document and `cofre keys --help` quote it).
ROLE_MEANING = {
    Role.READ: "list and restore backups, read the cluster's state",
    Role.BACKUP: "what read may, and add backups; never delete or overwrite one",
    Role.ADMIN: "everything: delete, retention, GC, repair, drain, keys",
}

KEY_PREFIX = "cofre_"
# The id: 16 hex digits (64 bits), enough that two keys never share one.
_KEY_ID_HEX = 16
_KEY = re.compile(r"cofre_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    digest: str
    text: str  # the whole key, shown once to whoever made it


def new_key() -> NewKey:
    key_id = secrets.token_hex(_KEY_ID_HEX // 2)
    secret = secrets.token_urlsafe(32)
    return NewKey(
        key_id=key_id, digest=secret_digest(secret), text=f"{KEY_PREFIX}{key_id}_{secret}"
    )


def parse_key(text: str) -> ParsedKey | None:
    """The id and secret of a key; None for anything else (the cluster token, garbage)."""
    match = _KEY.fullmatch(text)
    if match is None:
        return None
    return ParsedKey(key_id=match.group(1), secret=match.group(2))


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(secret_digest(secret).encode(), digest.encode())


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request: a key's name and role, or the cluster token (admin)."""

    name: str
    role: Role
    key_id: str | None = None  # None: the cluster token


CLUSTER_TOKEN = Principal(name="cluster-token", role=Role.ADMIN)
