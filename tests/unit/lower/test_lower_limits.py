"""The limits the docs quote are the limits the code has, and the schemas carry them."""

from __future__ import annotations

import re
from pathlib import Path

from cofre import limits
from cofre.protocol import manager_api, node_api

ARCHITECTURE = Path(__file__).parents[3] / "docs" / "architecture.md"


def _documented() -> dict[str, int]:
    rows = re.findall(r"^\| `([A-Z_]+)`[^|]*\| (\d+) \|$", ARCHITECTURE.read_text(), re.M)
    return {name: int(value) for name, value in rows}


def test_the_architecture_table_quotes_every_limit_exactly() -> None:
    in_code = {
        name: value
        for name, value in vars(limits).items()
        if name.isupper() and isinstance(value, int)
    }
    assert _documented() == in_code


def test_the_schemas_carry_the_limits() -> None:
    known = manager_api.KnownQuery.model_json_schema()["properties"]["hashes"]
    assert known["maxItems"] == limits.MAX_KNOWN_HASHES
    batch = manager_api.BatchDecl.model_json_schema()["properties"]["files"]
    assert batch["maxItems"] == limits.MAX_BATCH_FILES
    name = manager_api.FileDecl.model_json_schema()["properties"]["name"]
    assert name["maxLength"] == limits.MAX_NAME_BYTES
    check = node_api.CheckRequest.model_json_schema()["properties"]["hashes"]
    assert check["maxItems"] == limits.MAX_HASHES
    read = node_api.ReadRequest.model_json_schema()["properties"]["hashes"]
    assert read["maxItems"] == limits.MAX_FRAMED_CHUNKS
    sources = node_api.PullRequest.model_json_schema()["properties"]["sources"]
    assert sources["maxItems"] == limits.MAX_SOURCES
    size = manager_api.FileDecl.model_json_schema()["properties"]["size"]
    assert size["maximum"] == limits.MAX_UPLOAD_BYTES
