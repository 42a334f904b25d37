"""The scrub: every stored chunk re-read and re-hashed in the background, once per cycle.

Rot on a disk is silent until someone reads the chunk; a restore is too late to find it. The
scrub walks the store in hash order, a slice per pass, verifies each chunk with the store's own
check (a corrupt copy is quarantined there, as on any read), and keeps the findings for the
manager, which reads them with every probe (``GET /v1/stats``) and copies a good copy back.

Pacing: a cycle starts, and by time t into it the bytes due are the store's size times
t / cycle_s; a pass reads what is due (whole chunks only), so one cycle takes about cycle_s.
Reads are held to ``bytes_per_s`` by a token bucket, so a scrub never starves backups; a
store too big to read in one cycle at that rate just takes longer (logged). The cursor and the
cycle's totals are kept in ``scrub-state.json`` in the data dir, so a restarted node goes on
where it stopped instead of starting the cycle again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cofre.aio import Periodic
from cofre.config import ScrubConfig
from cofre.limits import MAX_SCRUB_FINDINGS
from cofre.models import ChunkHash, is_chunk_hash
from cofre.pacing import Pacer
from cofre.protocol.node_api import ScrubFinding, ScrubProgress
from cofre.storage_node.store import ChunkStore

log = logging.getLogger(__name__)

STATE_FILE = "scrub-state.json"
# Seconds between passes: the due bytes are worked off in slices this far apart.
PASS_INTERVAL_S = 10.0
# Seconds one pass may run: a store behind its schedule still saves its cursor this often.
PASS_MAX_S = 60.0
# Chunks listed per step of the walk (one thread hop for the listing).
LIST_BATCH = 256
_HEX2 = frozenset(f"{i:02x}" for i in range(256))
# What a corrupt copy looked like: bytes that do not hash to its name, or no bytes at all.
FINDING_KINDS = ("hash_mismatch", "empty")


def next_chunks(chunks_dir: Path, *, after: str, limit: int) -> list[tuple[ChunkHash, int]]:
    """Up to ``limit`` stored chunks with a hash above ``after`` ("" for the first), in hash
    order, with their sizes. Only the fan-out directories at or past ``after`` are listed."""
    out: list[tuple[ChunkHash, int]] = []
    with contextlib.suppress(FileNotFoundError):
        for first in sorted(os.listdir(chunks_dir)):
            if first not in _HEX2 or first < after[:2]:
                continue
            try:
                seconds = sorted(os.listdir(chunks_dir / first))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for second in seconds:
                if second not in _HEX2 or first + second < after[:4]:
                    continue
                leaf = chunks_dir / first / second
                try:
                    names = sorted(n for n in os.listdir(leaf) if is_chunk_hash(n) and n > after)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for name in names:
                    try:
                        size = (leaf / name).stat().st_size
                    except FileNotFoundError:  # deleted meanwhile
                        continue
                    out.append((ChunkHash(name), size))
                    if len(out) >= limit:
                        return out
    return out


def next_stored(store: ChunkStore, *, after: str, limit: int) -> list[tuple[ChunkHash, int]]:
    """:func:`next_chunks` over both layouts: packed chunks and chunk files, in hash order."""
    merged = dict(next_chunks(store.chunks_dir, after=after, limit=limit))
    merged.update(store.next_packed(after=after, limit=limit))
    return sorted(merged.items())[:limit]


def due_bytes(total_bytes: int, *, elapsed_s: float, cycle_s: float) -> float:
    """Bytes a cycle should have scrubbed ``elapsed_s`` into it, of ``total_bytes``."""
    if cycle_s <= 0:
        return float(total_bytes)
    return total_bytes * min(1.0, max(0.0, elapsed_s) / cycle_s)


@dataclass(slots=True)
class CycleState:
    """What survives a restart: where the walk stands and what this cycle did."""

    started_at: float | None = None
    cursor: str | None = None  # None: the cycle finished (or none began)
    bytes: int = 0
    chunks: int = 0
    last_full_pass_at: float | None = None


class Scrubber:
    """One node's scrub: :meth:`scrub_pass` is the pass of its ``Periodic``."""

    def __init__(
        self,
        store: ChunkStore,
        config: ScrubConfig,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.config = config
        self.enabled = config.cycle_s > 0 and config.bytes_per_s > 0
        self._clock = clock
        self._sleep = sleep
        self.started_at = clock()
        self.state = CycleState()
        self._loaded = False
        self._pacer = Pacer(config.bytes_per_s)
        self._findings: collections.deque[ScrubFinding] = collections.deque(
            maxlen=MAX_SCRUB_FINDINGS
        )
        self.findings_total = 0
        # Totals since the process started, read by /metrics.
        self.chunks_total = 0
        self.bytes_total = 0
        self.findings_by_kind: collections.Counter[str] = collections.Counter()
        self.cycles_total = 0

    @property
    def state_file(self) -> Path:
        return self.store.root / STATE_FILE

    def progress(self) -> ScrubProgress:
        s = self.state
        return ScrubProgress(
            enabled=self.enabled,
            started_at=self.started_at,
            cycle_s=self.config.cycle_s,
            bytes_per_s=self.config.bytes_per_s,
            cycle_started_at=s.started_at,
            cycle_bytes=s.bytes,
            cycle_chunks=s.chunks,
            cycle_progress=self.cycle_progress(),
            last_full_pass_at=s.last_full_pass_at,
            findings_total=self.findings_total,
            findings=list(self._findings),
        )

    def cycle_progress(self) -> float:
        """The share of the current cycle's bytes read, 0..1 (1 once its walk finished)."""
        s = self.state
        if s.cursor is None:
            return 1.0 if s.last_full_pass_at is not None else 0.0
        return min(1.0, s.bytes / max(self.store.stored_bytes, s.bytes, 1))

    async def scrub_pass(self) -> None:
        """Verify what is due of the current cycle (starting one when the last is over)."""
        if not self.enabled or not self.store.is_open:
            return
        if not self._loaded:
            self.state = await asyncio.to_thread(self._load)
            self._loaded = True
        s = self.state
        now = self._clock()
        if s.cursor is None:
            if s.started_at is not None and now < s.started_at + self.config.cycle_s:
                return  # this cycle's walk is done; the next starts on schedule
            # On schedule: the first cycle from the node's start, each next one a cycle after
            # the last began (or now, after one that overran; see _cycle_done).
            start = self.started_at if s.started_at is None else s.started_at + self.config.cycle_s
            s.started_at, s.cursor, s.bytes, s.chunks = min(start, now), "", 0, 0
            log.info("scrub cycle started stored_bytes=%d", self.store.stored_bytes)
        assert s.started_at is not None
        began = time.monotonic()
        verified = corrupt = 0
        try:
            while time.monotonic() - began < PASS_MAX_S:
                cursor = s.cursor or ""
                batch = await asyncio.to_thread(
                    next_stored, self.store, after=cursor, limit=LIST_BATCH
                )
                if not batch:
                    self._cycle_done()
                    break
                stop = False
                for chunk_hash, size in batch:
                    elapsed = self._clock() - s.started_at
                    due = due_bytes(
                        max(self.store.stored_bytes, s.bytes + size),
                        elapsed_s=elapsed,
                        cycle_s=self.config.cycle_s,
                    )
                    # Only whole chunks that are due; past the cycle's end, the rest at once.
                    if s.bytes + size > due and elapsed < self.config.cycle_s:
                        stop = True
                        break
                    result = await self.store.check([chunk_hash], verify=True)
                    s.cursor = chunk_hash
                    s.bytes += size
                    s.chunks += 1
                    verified += 1
                    self.chunks_total += 1
                    self.bytes_total += size
                    if chunk_hash in result.corrupt:
                        corrupt += 1
                        self._found(chunk_hash, kind="empty" if size == 0 else "hash_mismatch")
                    wait = self._pacer.take(size)
                    if wait > 0:
                        await self._sleep(wait)
                    if time.monotonic() - began >= PASS_MAX_S:
                        stop = True
                        break
                if stop:
                    break
        finally:
            await asyncio.to_thread(self._save)
        if verified:
            log.log(
                logging.INFO if corrupt else logging.DEBUG,
                "scrub pass verified=%d corrupt=%d cycle_bytes=%d cycle_chunks=%d",
                verified,
                corrupt,
                s.bytes,
                s.chunks,
            )

    def _found(self, chunk_hash: ChunkHash, *, kind: str) -> None:
        self.findings_total += 1
        self.findings_by_kind[kind] += 1
        self._findings.append(
            ScrubFinding(seq=self.findings_total, hash=chunk_hash, at=self._clock())
        )
        log.warning("scrub found a corrupt copy hash=%s kind=%s (quarantined)", chunk_hash, kind)

    def _cycle_done(self) -> None:
        s = self.state
        now = self._clock()
        assert s.started_at is not None
        took = now - s.started_at
        s.cursor = None
        s.last_full_pass_at = now
        self.cycles_total += 1
        log.info(
            "scrub cycle finished chunks=%d bytes=%d took_s=%.0f cycle_s=%.0f",
            s.chunks,
            s.bytes,
            took,
            self.config.cycle_s,
        )
        if took > self.config.cycle_s * 1.1 + PASS_INTERVAL_S:
            log.warning(
                "scrub cycle overran: the store is too big to read at the byte budget within "
                "the cycle took_s=%.0f cycle_s=%.0f bytes_per_s=%d",
                took,
                self.config.cycle_s,
                self.config.bytes_per_s,
            )
        if s.started_at + self.config.cycle_s < now:
            # Overran: the next cycle starts now rather than at once after a late one.
            s.started_at = now - self.config.cycle_s

    def _load(self) -> CycleState:
        try:
            raw = json.loads(self.state_file.read_text())
            state = CycleState(**raw)
        except FileNotFoundError:
            return CycleState()
        except (ValueError, TypeError, OSError) as exc:
            log.warning(
                "scrub state unreadable, starting a new cycle path=%s error=%s",
                self.state_file,
                exc,
            )
            return CycleState()
        if state.cursor is not None and state.cursor != "" and not is_chunk_hash(state.cursor):
            return CycleState()
        return state

    def _save(self) -> None:
        """Write the cycle state (no fsync: losing it costs a re-read, never data)."""
        tmp = self.state_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(asdict(self.state)))
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning("scrub state not saved path=%s error=%s", self.state_file, exc)


def scrub_loop(scrubber: Scrubber) -> Periodic | None:
    """The scrub's background loop, or None when it is off."""
    if not scrubber.enabled:
        return None
    return Periodic(
        "scrub",
        scrubber.scrub_pass,
        # Not shorter for a short cycle: a pass works off all that is due, however much.
        interval_s=PASS_INTERVAL_S,
    )
