"""Typed async clients for the manager's and the nodes' /v1 APIs.

Errors come back as the same ``cofre.errors`` classes the peer raised; a peer that cannot be
reached raises ``Unavailable`` naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from cofre.errors import BadRequest, CofreError, Unavailable, error_from_problem
from cofre.models import ChunkHash, Manifest, NodeStats, UploadId
from cofre.protocol.framing import CONTENT_TYPE, decode_frames
from cofre.protocol.server import AUTH_HEADER, TICKET_HEADER


@asynccontextmanager
async def open_session(
    *, timeout_s: float = 300.0, limit: int = 64
) -> AsyncIterator[aiohttp.ClientSession]:
    """One pooled HTTP session per process (or per component), closed on exit."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=min(10.0, timeout_s), sock_read=timeout_s
    )
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        yield session


class _ApiClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._headers = {AUTH_HEADER: f"Bearer {token}"}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        data: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
        ticket: str | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Send a request; return decoded JSON (or None for an empty body)."""
        headers = dict(self._headers)
        if ticket is not None:
            headers[TICKET_HEADER] = ticket
        if content_type is not None:
            headers["Content-Type"] = content_type
        # None keeps the session's own timeouts.
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else None
        url = self.base_url + path
        try:
            async with self.session.request(
                method,
                url,
                json=json,
                data=data,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else aiohttp.helpers.sentinel,
            ) as resp:
                if resp.status >= 400:
                    raise await _error_of(resp)
                if resp.status == 204 or resp.content_length == 0:
                    return None
                if resp.content_type == "application/json":
                    return await resp.json()
                return await resp.read()
        except CofreError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unavailable(
                f"cannot reach {self.base_url}: {_describe(exc)}", url=self.base_url
            ) from exc


async def _error_of(resp: aiohttp.ClientResponse) -> CofreError:
    try:
        problem = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        problem = None
    if not isinstance(problem, dict):
        text = (await resp.text(errors="replace"))[:200] if not resp.closed else ""
        problem = {"detail": f"HTTP {resp.status} from {resp.url.origin()}: {text}".strip()}
    return error_from_problem(problem, status=resp.status)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


class ManagerClient(_ApiClient):
    """The manager: catalog, placement and cluster state. It never carries file bytes."""

    async def create_upload(
        self, *, name: str, size: int, mode: int, mtime: float
    ) -> dict[str, Any]:
        """-> {upload_id, primary_url, ticket, chunk_size, expires}"""
        result: dict[str, Any] = await self._request(
            "POST", "/v1/uploads", json={"name": name, "size": size, "mode": mode, "mtime": mtime}
        )
        return result

    async def commit_upload(self, upload_id: UploadId, manifest: Manifest) -> dict[str, Any]:
        """-> {name, version, size, chunks}"""
        result: dict[str, Any] = await self._request(
            "POST", f"/v1/uploads/{upload_id}/commit", json={"manifest": manifest.to_json()}
        )
        return result

    async def known(self, upload_id: UploadId, hashes: list[ChunkHash]) -> set[ChunkHash]:
        """Those of ``hashes`` already stored with every copy elsewhere: no need to send them."""
        result = await self._request(
            "POST", f"/v1/uploads/{upload_id}/known", json={"hashes": hashes}
        )
        return {ChunkHash(h) for h in result["known"]}

    async def create_batch_upload(self, files: list[dict[str, Any]]) -> dict[str, Any]:
        """One upload for several files, each {name, size, mode, mtime}
        -> {upload_id, primary_url, ticket, chunk_size, expires}"""
        result: dict[str, Any] = await self._request("POST", "/v1/uploads", json={"files": files})
        return result

    async def commit_batch(
        self, upload_id: UploadId, manifests: list[Manifest]
    ) -> list[dict[str, Any]]:
        """Every manifest of a batch upload in one transaction -> [{name, version, size, chunks}]"""
        result = await self._request(
            "POST",
            f"/v1/uploads/{upload_id}/commit",
            json={"manifests": [m.to_json() for m in manifests]},
        )
        versions: list[dict[str, Any]] = result["versions"]
        return versions

    async def get_manifests(self, names: list[str]) -> list[dict[str, Any]]:
        """The latest live version of each name, as ``get_manifest`` answers; a name without one
        is left out."""
        result = await self._request("POST", "/v1/files/manifests", json={"names": names})
        manifests: list[dict[str, Any]] = result["manifests"]
        return manifests

    async def abort_upload(self, upload_id: UploadId) -> None:
        await self._request("DELETE", f"/v1/uploads/{upload_id}")

    async def list_files(self, *, versions: bool = False) -> list[dict[str, Any]]:
        result = await self._request(
            "GET", "/v1/files", params={"versions": "1" if versions else "0"}
        )
        files: list[dict[str, Any]] = result["files"]
        return files

    async def get_manifest(self, name: str, *, version: int | None = None) -> dict[str, Any]:
        """-> {name, version, size, mode, mtime, created, chunks: [{hash, length, nodes: [url]}]}"""
        params = {"name": name}
        if version is not None:
            params["version"] = str(version)
        result: dict[str, Any] = await self._request("GET", "/v1/files/manifest", params=params)
        return result

    async def where(self, name: str, *, version: int | None = None) -> dict[str, Any]:
        """-> {name, version, ..., manifest, chunks: [{hash, length, status, copies: [{node_id,
        state, why, since}]}]}"""
        params = {"name": name}
        if version is not None:
            params["version"] = str(version)
        result: dict[str, Any] = await self._request("GET", "/v1/files/where", params=params)
        return result

    async def delete(self, name: str, *, version: int | None = None) -> list[int]:
        params = {"name": name}
        if version is not None:
            params["version"] = str(version)
        result = await self._request("DELETE", "/v1/files", params=params)
        deleted: list[int] = result["deleted"]
        return deleted

    async def nodes(self) -> dict[str, Any]:
        """-> {nodes: [NodeStatus JSON], replication_factor, primary_keeps_copy}"""
        result: dict[str, Any] = await self._request("GET", "/v1/nodes")
        return result

    async def fsck(self, *, name: str | None = None, verify: bool = False) -> dict[str, Any]:
        params = {"verify": "1" if verify else "0"}
        if name is not None:
            params["name"] = name
        result: dict[str, Any] = await self._request("GET", "/v1/fsck", params=params)
        return result

    async def gc(self, *, grace_s: float | None = None) -> dict[str, Any]:
        body = {} if grace_s is None else {"grace_s": grace_s}
        result: dict[str, Any] = await self._request("POST", "/v1/gc", json=body)
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/v1/stats")
        return result

    async def repair(self, *, verify: bool = False) -> dict[str, Any]:
        """-> {chunks, lost_copies, under_replicated, copies_made, stuck, unrecoverable,
        healthy}"""
        result: dict[str, Any] = await self._request("POST", "/v1/repair", json={"verify": verify})
        return result

    async def rebuild_catalog(self) -> dict[str, Any]:
        """Fill an empty catalog from the manifests on the nodes (Conflict if not empty)
        -> {versions, names, skipped_incomplete, skipped_unreadable, nodes_scanned}"""
        result: dict[str, Any] = await self._request("POST", "/v1/catalog/rebuild", json={})
        return result

    async def drain(self, node_ids: Iterable[str]) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST", "/v1/drain", json={"nodes": list(node_ids)}
        )
        return result

    async def set_draining(self, node_ids: Iterable[str]) -> dict[str, Any]:
        """Make the manager's draining set exactly ``node_ids`` (empty ends every drain)."""
        result: dict[str, Any] = await self._request(
            "PUT", "/v1/drain", json={"nodes": list(node_ids)}
        )
        return result

    async def drain_status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/v1/drain")
        return result


class NodeClient(_ApiClient):
    """A storage node: chunk store, session relay."""

    async def stats(self) -> NodeStats:
        return NodeStats.from_json(await self._request("GET", "/v1/stats"))

    async def open_relay(
        self,
        *,
        upload_id: UploadId,
        replicas: list[dict[str, str]],
        replica_ticket: str,
        keep_copy: bool,
        expires: float,
    ) -> None:
        """Manager -> primary: the replicas of this upload, and their ticket."""
        await self._request(
            "POST",
            "/v1/sessions",
            json={
                "upload_id": upload_id,
                "replicas": replicas,
                "replica_ticket": replica_ticket,
                "keep_copy": keep_copy,
                "expires": expires,
            },
        )

    async def close_relay(self, upload_id: UploadId) -> None:
        await self._request("DELETE", f"/v1/sessions/{upload_id}")

    async def missing(
        self, upload_id: UploadId, hashes: list[ChunkHash], *, ticket: str
    ) -> list[ChunkHash]:
        """Client -> primary: which of these chunks must still be sent."""
        result = await self._request(
            "POST", f"/v1/sessions/{upload_id}/missing", json={"hashes": hashes}, ticket=ticket
        )
        missing: list[ChunkHash] = result["missing"]
        return missing

    async def upload_chunk(
        self, upload_id: UploadId, chunk_hash: ChunkHash, data: bytes, *, ticket: str
    ) -> None:
        """Client -> primary: one chunk; returns once every copy is durable."""
        await self._request(
            "PUT", f"/v1/sessions/{upload_id}/chunks/{chunk_hash}", data=data, ticket=ticket
        )

    async def upload_chunks(self, upload_id: UploadId, framed: bytes, *, ticket: str) -> None:
        """Client -> primary: a framed batch (cofre.protocol.framing); returns once every copy
        of every chunk in it is durable."""
        await self._request(
            "PUT",
            f"/v1/sessions/{upload_id}/chunks",
            data=framed,
            content_type=CONTENT_TYPE,
            ticket=ticket,
        )

    async def put_chunks(self, framed: bytes, *, ticket: str) -> list[ChunkHash]:
        """Store a framed batch durably on this node; -> the hashes that were new."""
        result = await self._request(
            "PUT", "/v1/chunks", data=framed, content_type=CONTENT_TYPE, ticket=ticket
        )
        created: list[ChunkHash] = result["created"]
        return created

    async def read_chunks(self, hashes: list[ChunkHash]) -> list[tuple[ChunkHash, memoryview]]:
        """Several chunks in one framed answer, each verified by the node; absent or corrupt
        ones are left out (fetch those one by one elsewhere)."""
        body = await self._request("POST", "/v1/chunks/read", json={"hashes": hashes})
        if body is None:
            return []
        if not isinstance(body, bytes):
            raise BadRequest(f"node {self.base_url} returned no framed body")
        return decode_frames(body)

    async def put_chunk(self, chunk_hash: ChunkHash, data: bytes, *, ticket: str) -> bool:
        """Store one chunk durably on this node; True if it was new."""
        result = await self._request("PUT", f"/v1/chunks/{chunk_hash}", data=data, ticket=ticket)
        return bool(result and result.get("created"))

    async def get_chunk(self, chunk_hash: ChunkHash) -> bytes:
        data = await self._request("GET", f"/v1/chunks/{chunk_hash}")
        if not isinstance(data, bytes):
            raise BadRequest(f"node {self.base_url} returned no bytes for chunk {chunk_hash}")
        return data

    async def check(
        self, hashes: list[ChunkHash], *, verify: bool = False, touch: bool = False
    ) -> dict[str, list[ChunkHash]]:
        """-> {present, missing, corrupt}; verify re-hashes, touch protects from GC."""
        result: dict[str, list[ChunkHash]] = await self._request(
            "POST", "/v1/chunks/check", json={"hashes": hashes, "verify": verify, "touch": touch}
        )
        return result

    async def inventory(self, *, before: float | None = None) -> list[dict[str, Any]]:
        """-> [{hash, length, mtime}] of every chunk (last written/touched before ``before``)."""
        params = {} if before is None else {"before": repr(before)}
        result = await self._request("GET", "/v1/chunks", params=params)
        chunks: list[dict[str, Any]] = result["chunks"]
        return chunks

    async def manifests(self) -> list[dict[str, Any]]:
        """-> [{hash, length}] of every chunk that starts like a manifest (not verified)."""
        result = await self._request("GET", "/v1/manifests")
        found: list[dict[str, Any]] = result["manifests"]
        return found

    async def delete_chunks(self, hashes: list[ChunkHash]) -> dict[str, int]:
        """-> {deleted, freed_bytes}"""
        result: dict[str, int] = await self._request(
            "POST", "/v1/chunks/delete", json={"hashes": hashes}
        )
        return result

    async def pull_chunk(self, chunk_hash: ChunkHash, sources: list[str], *, ticket: str) -> None:
        """Manager -> node: fetch this chunk from one of ``sources`` (node URLs) and store it."""
        await self._request(
            "POST",
            "/v1/chunks/pull",
            json={"hash": chunk_hash, "sources": sources},
            ticket=ticket,
        )
