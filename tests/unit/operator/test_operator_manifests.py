"""The CRD, the chart's values and the examples: parsed and checked without a cluster."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cofre.operator.decisions import ScalePlan
from cofre.operator.spec import CLI_KEY_KEY, ClusterSpec, Names, parse_spec
from cofre.operator.status import Observed, build_status
from cofre.protocol.manager_api import ClusterStats

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "charts/cofre/crds/backupcluster.yaml"
CHART = ROOT / "charts/cofre"


def _version() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    assert isinstance(version, dict)
    return version


def _spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """A small JSON-schema subset (the keywords our schemas use); returns the errors."""
    errors: list[str] = []
    if "anyOf" in schema and all(validate(value, s, path) for s in schema["anyOf"]):
        errors.append(f"{path}: matches no anyOf branch")
    types = schema.get("type")
    if types is not None:
        kinds = types if isinstance(types, list) else [types]
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "boolean": lambda v: isinstance(v, bool),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        }
        if not any(checks[k](value) for k in kinds):
            return [f"{path}: {value!r} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: too long")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: {key} is required")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errors += validate(item, props[key], f"{path}.{key}")
            elif extra is False:
                errors.append(f"{path}: unknown key {key}")
            elif isinstance(extra, dict):
                errors += validate(item, extra, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors


def test_crd_identity_and_subresources() -> None:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["metadata"]["name"] == "backupclusters.cofre.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["bc"]
    version = _version()
    assert version["name"] == "v1alpha1"
    assert version["served"] and version["storage"]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.storageNodes",
        "statusReplicasPath": ".status.readyNodes",
        "labelSelectorPath": ".status.selector",
    }


def test_crd_printer_columns() -> None:
    columns = {c["name"]: c["jsonPath"] for c in _version()["additionalPrinterColumns"]}
    assert columns["Ready"] == ".status.readyNodes"
    assert columns["Factor"] == ".spec.replicationFactor"
    assert columns["Used"] == ".status.used"
    assert columns["Phase"] == ".status.phase"
    assert columns["Age"] == ".metadata.creationTimestamp"
    assert columns["Nodes"] == ".spec.storageNodes"
    assert columns["Health"] == ".status.healthStatus"
    assert columns["Capacity"] == ".status.capacity"


def test_crd_status_fields_cover_what_the_operator_writes() -> None:
    stats = ClusterStats(
        nodes_ready=3,
        nodes_total=3,
        used_bytes=1,
        capacity_bytes=2,
        files=1,
        versions=1,
        under_replicated_chunks=1,
        missing_chunks=0,
    )
    observed = Observed(
        generation=1,
        phase="Ready",
        desired=3,
        ready_nodes=3,
        manager_ready=True,
        replicas=3,
        plan=ScalePlan(replicas=3, state="steady"),
        selector="a=b",
        stats=stats,
    )
    status = build_status({}, observed, now=datetime.now(UTC))
    schema = _version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert set(status) <= set(schema["properties"])
    assert validate(status, {**schema, "additionalProperties": False}) == []
    assert schema["properties"]["healthStatus"]["enum"] == ["green", "yellow", "red"]


def test_crd_cel_rules() -> None:
    spec = _spec_schema()
    rules = spec["x-kubernetes-validations"]
    assert len(rules) == 2
    for rule in rules:
        assert "self.storageNodes" in rule["rule"] and "self.primaryKeepsCopy" in rule["rule"]
        assert "replicationFactor" in rule["message"]
        assert rule["fieldPath"] == ".storageNodes"
    storage = spec["properties"]["storage"]["properties"]
    assert storage["size"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"


def test_crd_bounds() -> None:
    props = _spec_schema()["properties"]
    assert props["storageNodes"]["minimum"] == 1
    assert props["replicationFactor"]["minimum"] == 1
    for weight in props["placement"]["properties"].values():
        assert (weight["minimum"], weight["maximum"]) == (0, 1)
    size = props["storage"]["properties"]["size"]
    assert size["x-kubernetes-int-or-string"] is True
    assert re.search(size["pattern"], "10Gi") and not re.search(size["pattern"], "10 gigs")


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """What the API server's defaulting makes of an empty spec."""
    out: dict[str, Any] = {}
    for key, prop in schema.get("properties", {}).items():
        if "default" in prop:
            value = prop["default"]
            out[key] = _defaults(prop) if value == {} else value
    return out


def test_crd_defaults_match_the_operator_defaults() -> None:
    defaulted = _defaults(_spec_schema())
    assert parse_spec(defaulted) == parse_spec({}) == ClusterSpec()
    assert validate(defaulted, _spec_schema()) == []


def test_crd_schema_rejects_bad_values() -> None:
    schema = _spec_schema()
    assert validate({"storageNodes": 0}, schema)
    assert validate({"placement": {"latencyWeight": 2}}, schema)
    assert validate({"storage": {"size": "lots"}}, schema)
    assert validate({"imagePullPolicy": "Sometimes"}, schema)
    assert validate({"monitoring": {"capacityWarningPercent": 101}}, schema)
    assert validate({"monitoring": {"publicMetrics": "yes"}}, schema)
    assert validate({"certificates": {"duration": "90 days"}}, schema)
    assert validate({"certificates": {"duration": ""}}, schema)
    assert validate({"certificates": {"issuer": {"kind": "Issuer"}}}, schema)
    assert validate({"certificates": {"issuer": {"name": "x", "kind": "Vault"}}}, schema)
    good = {"certificates": {"duration": "1h30m", "issuer": {"name": "x", "kind": "ClusterIssuer"}}}
    assert validate(good, schema) == []


def test_crd_certificate_rules() -> None:
    certificates = _spec_schema()["properties"]["certificates"]
    rules = [r["rule"] for r in certificates["x-kubernetes-validations"]]
    # The issuer is fixed once created; a CA outlives the certificates it signs.
    assert any("oldSelf.issuer" in r for r in rules)
    # Guarded by has(): the API server checks the rule on the default {} too.
    assert (
        "!has(self.caDuration) || !has(self.duration) || "
        "duration(self.caDuration) > duration(self.duration)"
    ) in rules
    (minimum,) = certificates["properties"]["duration"]["x-kubernetes-validations"]
    assert minimum["rule"] == "duration(self) >= duration('10m')"


def test_example_backupcluster_is_valid() -> None:
    example = yaml.safe_load((ROOT / "examples/backupcluster.yaml").read_text())
    assert example["apiVersion"] == "cofre.dev/v1alpha1"
    assert example["kind"] == "BackupCluster"
    assert example["metadata"]["name"] == "demo"
    assert validate(example["spec"], _spec_schema()) == []
    spec = parse_spec(example["spec"])
    assert (spec.storage_nodes, spec.replication_factor) == (4, 2)


def test_example_cli_job_reaches_the_demo_manager_with_the_cli_key() -> None:
    job = yaml.safe_load((ROOT / "examples/cli-job.yaml").read_text())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["COFRE_MANAGER"]["value"].startswith("https://demo-manager")
    key = env["COFRE_KEY"]["valueFrom"]["secretKeyRef"]
    assert key == {"name": Names("demo").cli_key, "key": CLI_KEY_KEY}
    assert "COFRE_TOKEN" not in env
    # Trusts the CA from the Secret that holds only ca.crt.
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    assert env["COFRE_CA"]["value"] == mount["mountPath"] + "/ca.crt"
    assert "COFRE_INSECURE" not in env
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "demo-cofre-trust"
    assert container["command"][:2] == ["cofre", "ls"]


def test_values_follow_the_values_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert validate(values, schema) == []
    assert validate({**values, "surprise": 1}, schema) == ["$: unknown key surprise"]
    assert validate({**values, "image": {**values["image"], "pullPolicy": "Maybe"}}, schema)


def test_values_are_hardened_and_local_image_friendly() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert (values["image"]["repository"], values["image"]["tag"]) == ("localhost/cofre", "dev")
    assert values["image"]["pullPolicy"] == "IfNotPresent"
    sc = values["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert values["podSecurityContext"]["runAsNonRoot"] is True


def test_every_value_is_documented() -> None:
    """A `# --` comment above every top-level value and every setting of the groups."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    groups = {"image", "operator", "serviceAccount", "rbac", "tests"}
    group = None
    for i, line in enumerate(lines):
        top = re.match(r"^([A-Za-z]+):", line)
        child = re.match(r"^  ([A-Za-z]+):", line)
        if top:
            group = top.group(1) if top.group(1) in groups else None
            if group is None:
                assert lines[i - 1].startswith("# --"), f"undocumented value: {line}"
        elif child and group is not None:
            above = lines[i - 1].strip()
            assert above.startswith("#"), f"undocumented value: {group}.{child.group(1)}"
        # monitoring's settings, one level deeper.
        grandchild = re.match(r"^    ([A-Za-z]+):", line)
        if grandchild and top is None and not group and _under(lines, i, "monitoring:"):
            assert lines[i - 1].strip().startswith("#"), f"undocumented: {grandchild.group(1)}"


def _under(lines: list[str], i: int, top: str) -> bool:
    """Whether line ``i`` is inside the top-level block ``top``."""
    starts = [j for j in range(i) if re.match(r"^[A-Za-z]", lines[j])]
    return bool(starts) and lines[starts[-1]].startswith(top)
