"""The parser of `kubectl auth can-i --list` the RBAC end-to-end tests rely on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cofre.operator import builders

from ..rbac_checks import can_i, expected, parse_listing

ROOT = Path(__file__).resolve().parents[2]

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


def _listed(rules: list[dict[str, list[str]]]) -> set[str]:
    """RBAC rules as `can-i --list` names them: resource.group, verbs sorted."""
    out = set()
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                name, _, sub = resource.partition("/")
                full = f"{name}.{group}" if group else name
                full += f"/{sub}" if sub else ""
                out.add(f"{full} [] [{' '.join(sorted(rule['verbs']))}]")
    return out


def test_the_expectations_follow_from_the_chart_and_the_builders() -> None:
    """Offline, what the end-to-end tests check on the apiserver: the operator's ClusterRoles
    and the manager's Role grant exactly the checked-in rules (beyond the baseline)."""
    template = (ROOT / "charts/cofre/templates/clusterrole.yaml").read_text()
    plain = "\n".join(line for line in template.splitlines() if "{{" not in line)
    roles = list(yaml.safe_load_all(plain))
    granted = set().union(*(_listed(role["rules"]) for role in roles))
    assert sorted(granted | set(expected("baseline"))) == expected("operator")
    manager = builders.build_manager_role(name="demo", namespace="ns")
    assert sorted(_listed(manager["rules"]) | set(expected("baseline"))) == expected("manager")
