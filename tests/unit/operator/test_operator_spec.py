"""Parsing and validating a BackupCluster spec."""

from __future__ import annotations

import pytest

from cofre.operator.spec import (
    Names,
    SpecError,
    format_duration,
    min_storage_nodes,
    parse_duration,
    parse_spec,
)


def test_defaults_fill_an_empty_spec() -> None:
    spec = parse_spec({})
    assert (spec.storage_nodes, spec.replication_factor, spec.primary_keeps_copy) == (3, 2, False)
    assert spec.storage_size == "10Gi"
    assert spec.image is None
    assert spec.image_pull_policy == "IfNotPresent"
    assert (spec.capacity_warning_percent, spec.public_metrics) == (85, False)


@pytest.mark.parametrize(
    ("factor", "keeps", "needed"), [(1, False, 2), (2, False, 3), (2, True, 2), (3, True, 3)]
)
def test_min_storage_nodes(factor: int, keeps: bool, needed: int) -> None:
    assert min_storage_nodes(replication_factor=factor, primary_keeps_copy=keeps) == needed


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"storageNodes": 0}, "storageNodes must be >= 1"),
        ({"replicationFactor": 0, "storageNodes": 1}, "replicationFactor must be >= 1"),
        ({"storageNodes": 2, "replicationFactor": 2}, "needs at least 3"),
        ({"placement": {"latencyWeight": 1.5}}, "latencyWeight must be within [0, 1]"),
        ({"storage": {"size": "ten gigs"}}, "storage.size must be a quantity"),
        ({"imagePullPolicy": "Sometimes"}, "imagePullPolicy"),
        ({"storageNodes": "4"}, "storageNodes must be an integer"),
        (
            {"monitoring": {"capacityWarningPercent": 0}},
            "monitoring.capacityWarningPercent must be within [1, 100]",
        ),
        (
            {"monitoring": {"capacityWarningPercent": "90"}},
            "monitoring.capacityWarningPercent must",
        ),
    ],
)
def test_invalid_specs_name_the_field(raw: dict[str, object], words: str) -> None:
    with pytest.raises(SpecError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(raw)


def test_primary_keeps_copy_allows_f_nodes() -> None:
    assert parse_spec({"storageNodes": 2, "replicationFactor": 2, "primaryKeepsCopy": True})


def test_names() -> None:
    names = Names("demo")
    assert names.storage_pod(3) == "demo-storage-3"
    assert names.secret == "demo-token"
    assert names.manager_url("ns") == "https://demo-manager.ns.svc:8080"
    assert names.ca_secret == "demo-cofre-ca"
    assert names.trust_secret == "demo-cofre-trust"
    assert (names.manager_tls, names.storage_tls) == (
        "demo-cofre-tls-manager",
        "demo-cofre-tls-storage",
    )


def test_certificates_default_to_the_operators_own_ca() -> None:
    certs = parse_spec({}).certificates
    assert certs.issuer is None
    assert (certs.duration_s, certs.ca_duration_s) == (90 * 86400, 3650 * 86400)
    custom = parse_spec(
        {"certificates": {"duration": "1h30m", "caDuration": "10h", "issuer": {"name": "corp"}}}
    ).certificates
    assert (custom.duration_s, custom.ca_duration_s) == (5400, 36000)
    assert custom.issuer is not None
    assert (custom.issuer.name, custom.issuer.kind, custom.issuer.group) == (
        "corp",
        "Issuer",
        "cert-manager.io",
    )


@pytest.mark.parametrize(("seconds", "text"), [(5400, "1h30m0s"), (45, "0h0m45s")])
def test_durations_round_trip(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text, field_name="x") == seconds


@pytest.mark.parametrize(
    ("certificates", "words"),
    [
        ({"duration": "90 days"}, "certificates.duration must be a duration"),
        ({"duration": ""}, "certificates.duration must be a duration"),
        ({"duration": 3600}, "certificates.duration must be a duration"),
        ({"duration": "9m"}, "certificates.duration must be at least 600s"),
        ({"duration": "10h", "caDuration": "10h"}, "caDuration must be longer"),
        ({"issuer": {"kind": "Issuer"}}, "issuer.name must name"),
        ({"issuer": {"name": "x", "kind": "Vault"}}, "issuer.kind must be one of"),
        ({"issuer": "corp"}, "issuer must be an object"),
    ],
)
def test_invalid_certificates_name_the_field(certificates: dict[str, object], words: str) -> None:
    with pytest.raises(SpecError, match=words):
        parse_spec({"certificates": certificates})


def test_certificates_must_be_an_object() -> None:
    with pytest.raises(SpecError, match=r"spec\.certificates must be an object"):
        parse_spec({"certificates": "on"})
