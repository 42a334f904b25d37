"""The node API's operation table: ``chunk_api`` and ``relay`` declare their routes on it, and
``app`` serves it with its OpenAPI document."""

from __future__ import annotations

from cofre.protocol.api import Api, RawBody
from cofre.protocol.framing import CONTENT_TYPE

api = Api()
CHUNK = RawBody("application/octet-stream", "The chunk's bytes.")
FRAMED = RawBody(CONTENT_TYPE, "A framed batch of chunks (a JSON header line, then bytes).")
