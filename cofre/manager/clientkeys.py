"""Client keys: made, listed and revoked by an admin, checked on every request that sends one.

The catalog keeps a sha256 of each key's secret (``cofre.protocol.access`` says why that is
enough); this keeps the rows in memory too, since the manager is the catalog's only writer, so
checking a key costs no disk read. A revoked key is refused from the next request on.
"""

from __future__ import annotations

import logging
import time

from cofre.errors import NotFound
from cofre.manager.catalog import Catalog, KeyRow
from cofre.protocol.access import ParsedKey, Principal, Role, new_key, secret_matches

log = logging.getLogger(__name__)

# A key's last use is written to the catalog at most this often (seconds): listing keys tells
# which are still in use, and a busy client does not cost a write per request.
LAST_USED_WRITE_S = 60.0


class KeyStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._by_id: dict[str, KeyRow] = {}
        self._used: dict[str, float] = {}
        self._written: dict[str, float] = {}

    async def load(self) -> int:
        rows = await self.catalog.client_keys()
        self._by_id = {r.key_id: r for r in rows}
        return len(rows)

    async def lookup(self, parsed: ParsedKey) -> Principal | None:
        """Who holds this key; None for an unknown id or a secret that does not match."""
        row = self._by_id.get(parsed.key_id)
        if row is None or not secret_matches(parsed.secret, row.digest):
            return None
        now = time.time()
        self._used[row.key_id] = now
        if now - self._written.get(row.key_id, row.last_used or 0.0) >= LAST_USED_WRITE_S:
            self._written[row.key_id] = now
            await self.catalog.key_used(row.key_id, now)
        return Principal(name=row.name, role=Role(row.role), key_id=row.key_id)

    async def add(self, *, name: str, role: Role, by: str) -> tuple[KeyRow, str]:
        """A new key; -> its row and the key itself (shown once, never kept)."""
        made = new_key()
        row = KeyRow(
            key_id=made.key_id, name=name, role=role.value, digest=made.digest, created=time.time()
        )
        await self.catalog.add_key(row)
        self._by_id[row.key_id] = row
        log.info("key created name=%s role=%s id=%s by=%s", name, role.value, row.key_id, by)
        return row, made.text

    async def remove(self, name: str, *, by: str) -> None:
        """Revoke the key named ``name``; NotFound if there is none."""
        if not await self.catalog.delete_key(name):
            raise NotFound(f"no key named {name!r}")
        for key_id, row in list(self._by_id.items()):
            if row.name == name:
                del self._by_id[key_id]
                self._used.pop(key_id, None)
                self._written.pop(key_id, None)
        log.info("key revoked name=%s by=%s", name, by)

    def rows(self) -> list[tuple[KeyRow, float | None]]:
        """Every key, by name, with its last use (to the minute in the catalog, exact here)."""
        listed = sorted(self._by_id.values(), key=lambda r: r.name)
        return [(r, self._used.get(r.key_id, r.last_used)) for r in listed]
