"""The parser of `kubectl auth can-i --list` the RBAC end-to-end tests rely on."""

from __future__ import annotations

import pytest

from ..rbac_checks import can_i, expected, parse_listing

ROWS = [
    ("Resources", "Non-Resource URLs", "Resource Names", "Verbs"),
    ("pods", "[]", "[]", "[watch get list]"),
    ("selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"),
    ("secrets", "[]", "[demo-token]", "[get]"),
    ("pods", "[]", "[]", "[get list watch]"),
    ("", "[/api/*]", "[]", "[get]"),
    ("", "[/version]", "[]", "[get]"),
]


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """As kubectl prints it: columns padded to their widest cell, three spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


LISTING = table(ROWS)


def test_rules_are_normalised_sorted_and_unique() -> None:
    resource, other = parse_listing(LISTING)
    assert resource == [
        "pods [] [get list watch]",
        "secrets [demo-token] [get]",
        "selfsubjectaccessreviews.authorization.k8s.io [] [create]",
    ]
    assert other == ["[/api/*] [get]", "[/version] [get]"]


def test_a_write_to_a_non_resource_url_fails_the_check() -> None:
    listing = table([*ROWS, ("", "[/logs]", "[]", "[post]")])

    def kubectl(*_: str, **__: object) -> str:
        return listing

    with pytest.raises(AssertionError, match="non-resource"):
        can_i(kubectl, account="ns:sa", namespace="ns")


def test_expectations_are_sorted_rule_lines() -> None:
    for name in ("baseline", "manager", "toolbox", "operator"):
        rules = expected(name)
        assert rules and all(len(r.split(" [")) == 3 for r in rules), name
    assert set(expected("baseline")) <= set(expected("manager"))
    assert set(expected("baseline")) <= set(expected("operator"))
    assert expected("toolbox") == expected("baseline")
