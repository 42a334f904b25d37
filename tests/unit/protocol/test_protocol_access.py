"""Roles and keys: their order, the key format, and the hash the manager keeps."""

from __future__ import annotations

import hashlib

import pytest

from cofre.protocol.access import (
    Role,
    new_key,
    parse_key,
    secret_digest,
    secret_matches,
)


@pytest.mark.parametrize(
    ("have", "allowed"),
    [
        (Role.READ, {Role.READ}),
        (Role.BACKUP, {Role.READ, Role.BACKUP}),
        (Role.ADMIN, {Role.READ, Role.BACKUP, Role.ADMIN}),
    ],
)
def test_a_role_allows_itself_and_every_lower_one(have: Role, allowed: set[Role]) -> None:
    assert {need for need in Role if have.allows(need)} == allowed


def test_a_new_key_parses_back_to_its_id_and_a_secret_that_matches_its_digest() -> None:
    made = new_key()
    parsed = parse_key(made.text)
    assert parsed is not None and parsed.key_id == made.key_id
    assert made.text == f"cofre_{made.key_id}_{parsed.secret}"
    assert made.digest == hashlib.sha256(parsed.secret.encode()).hexdigest()
    assert parsed.secret not in made.digest
    assert secret_matches(parsed.secret, made.digest)
    assert not secret_matches(parsed.secret[:-1] + "x", made.digest)
    # Two keys share neither id nor secret.
    other = parse_key(new_key().text)
    assert other is not None and (other.key_id, other.secret) != (parsed.key_id, parsed.secret)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a-cluster-token",
        "cofre_",
        "cofre_0123456789abcdef_short",
        "cofre_0123456789ABCDEF_" + "a" * 43,  # the id is lower-case hex
        "cofre_0123456789abcde_" + "a" * 43,  # 15 hex digits
        "cofre_0123456789abcdef_" + "a" * 44,
        "cofre_0123456789abcdef_" + "a" * 42 + "=",
        "Cofre_0123456789abcdef_" + "a" * 43,
        "cofre_0123456789abcdef_" + "a" * 43 + "\n",
    ],
)
def test_anything_else_is_not_a_key(text: str) -> None:
    assert parse_key(text) is None


def test_a_secret_with_underscores_still_parses() -> None:
    secret = "_" * 43
    parsed = parse_key("cofre_0123456789abcdef_" + secret)
    assert parsed is not None and parsed.secret == secret
    assert secret_digest(secret) == hashlib.sha256(secret.encode()).hexdigest()
