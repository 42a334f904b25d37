"""The manager's OpenAPI document, generated from its route declarations: every route the app
serves is in it, with its parameters and the model's own schema for every JSON body."""

from __future__ import annotations

from typing import Any

from cofre.manager.routes import api

from ..openapi_checks import SCHEMAS, check_document
from .conftest import Cluster


async def test_openapi_documents_every_route_and_json_body(make_cluster: Any) -> None:
    cluster: Cluster = await make_cluster(3)
    status, doc = await cluster.call("GET", "/v1/openapi.json")
    assert status == 200
    check_document(cluster.manager.server.app, doc, api.operations)
    # The upload declaration is either form, each with its own schema.
    create = doc["components"]["schemas"]["CreateUpload"]
    assert create["oneOf"] == [{"$ref": SCHEMAS + "FileDecl"}, {"$ref": SCHEMAS + "BatchDecl"}]
    assert set(doc["components"]["schemas"]["FileDecl"]["required"]) == {"name", "size"}
