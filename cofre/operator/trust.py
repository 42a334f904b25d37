"""What the operator trusts when it calls a cluster's manager: that cluster's own CA.

Every BackupCluster has its own CA, so the operator's one HTTP session verifies each manager with
a context of its own (``ManagerClient(tls=...)``), made from the bundle read from the cluster's
Secret and kept while that bundle stays the same.
"""

from __future__ import annotations

import hashlib
import ssl

from cofre import tls

Key = tuple[str, str]


class TrustContexts:
    """One client SSL context per BackupCluster (namespace, name), for its current CA bundle."""

    def __init__(self) -> None:
        self._contexts: dict[Key, tuple[str, ssl.SSLContext]] = {}

    def context(self, key: Key, bundle: bytes) -> ssl.SSLContext:
        """A context trusting exactly ``bundle``; ssl.SSLError or ValueError when it does not
        parse."""
        digest = hashlib.sha256(bundle).hexdigest()
        held = self._contexts.get(key)
        if held is not None and held[0] == digest:
            return held[1]
        context = tls.client_context(ca_file=None, ca_pem=bundle)
        self._contexts[key] = (digest, context)
        return context

    def forget(self, key: Key) -> None:
        """The cluster is gone."""
        self._contexts.pop(key, None)
