"""HTTPS sessions to the managers the operator runs, each trusting its own cluster's CA.

Every BackupCluster has its own CA, so one session per cluster, verifying against the bundle read
from the cluster's Secret; a changed bundle (a CA rotation) replaces the session.
"""

from __future__ import annotations

import hashlib
import ssl

import aiohttp
from aiohttp.abc import AbstractResolver

from cofre import tls

Key = tuple[str, str]


def context_for(bundle: bytes) -> ssl.SSLContext:
    """A client context trusting exactly the CA certificates of ``bundle`` (PEM); ssl.SSLError
    or ValueError for a bundle that does not parse."""
    return tls.client_context(ca_file=None, ca_pem=bundle)


class TrustedSessions:
    """One aiohttp session per BackupCluster (namespace, name), for its current CA bundle."""

    def __init__(self, *, timeout_s: float = 10.0, resolver: AbstractResolver | None = None):
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._resolver = resolver
        self._sessions: dict[Key, tuple[str, aiohttp.ClientSession]] = {}

    async def session(self, key: Key, bundle: bytes) -> aiohttp.ClientSession:
        digest = hashlib.sha256(bundle).hexdigest()
        held = self._sessions.get(key)
        if held is not None:
            if held[0] == digest:
                return held[1]
            await held[1].close()
        connector = aiohttp.TCPConnector(limit=4, ssl=context_for(bundle), resolver=self._resolver)
        session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        self._sessions[key] = (digest, session)
        return session

    async def forget(self, key: Key) -> None:
        """The cluster is gone: close its session."""
        held = self._sessions.pop(key, None)
        if held is not None:
            await held[1].close()

    async def close(self) -> None:
        for _, session in self._sessions.values():
            await session.close()
        self._sessions.clear()
