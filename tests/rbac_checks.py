"""What a ServiceAccount may do, as the API server answers ``kubectl auth can-i --list``, held
to a checked-in expectation (``tests/e2e/rbac/<name>.txt``: one rule a line, ``resource
[names] [verbs]``, ``#`` comments). The non-resource rules every account gets (discovery,
/healthz, /version...) are not listed there; they must be reads only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

EXPECTED = Path(__file__).parent / "e2e" / "rbac"
_COLUMNS = ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")


def _words(cell: str) -> list[str]:
    return cell.strip().strip("[]").split()


def parse_listing(listing: str) -> tuple[list[str], list[str]]:
    """-> (resource rules, non-resource rules) of a ``can-i --list`` table, each rule one
    normalised line (verbs sorted), sorted and without repeats."""
    lines = [line for line in listing.splitlines() if line.strip()]
    header = lines[0]
    starts = [header.index(column) for column in _COLUMNS]
    resource: set[str] = set()
    other: set[str] = set()
    for line in lines[1:]:
        cells = [line[a:b] for a, b in zip(starts, [*starts[1:], None], strict=True)]
        what, urls, names, verbs = (c.strip() for c in cells)
        verbs_text = "[" + " ".join(sorted(_words(verbs))) + "]"
        if what:
            resource.add(f"{what} [{' '.join(sorted(_words(names)))}] {verbs_text}")
        else:
            other.add(f"{urls} {verbs_text}")
    return sorted(resource), sorted(other)


def expected(name: str) -> list[str]:
    text = (EXPECTED / f"{name}.txt").read_text()
    rules = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return sorted({" ".join(r.split()) for r in rules if r})


def can_i(kubectl: Callable[..., str], *, account: str, namespace: str) -> list[str]:
    """The resource rules of the ServiceAccount ``account`` ("namespace:name") in
    ``namespace``; its non-resource rules are checked to be reads only."""
    listing = kubectl(
        "auth", "can-i", "--list", f"--as=system:serviceaccount:{account}", "-n", namespace
    )
    resource, other = parse_listing(listing)
    writes = [rule for rule in other if not rule.endswith(" [get]")]
    assert not writes, f"{account} may write to non-resource URLs: {writes}"
    return resource
