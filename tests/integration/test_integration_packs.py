"""A real storage node process killed (SIGKILL) while it appends to a pack: after a restart
every acknowledged chunk is there and verified, and the torn record is cut off."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cofre.models import ChunkHash, NodeId, UploadId
from cofre.protocol.framing import CONTENT_TYPE, encode_frames
from cofre.storage_node.packs import KIND_CHUNK, record_header, scan_pack
from cofre.storage_node.store import stored_chunks
from cofre.tickets import Ticket, ticket_key

from ..helpers import eventually_sync

TOKEN = "pack-test-token"
NODE = "node-0"
CHUNK = 1024 * 1024
PER_BATCH = 8  # 8 MiB: one large append per request
WRITERS = 3


def start_node(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFRE_")}
    argv = [
        sys.executable,
        "-m",
        "cofre.storage_node",
        "--node-id", NODE,
        "--port", str(port),
        "--token", TOKEN,
        "--data-dir", str(data_dir),
        "--reserve-bytes", "0",
            "--scrub-cycle-s", "0",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=out)


def ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False


class Writer(threading.Thread):
    """Sends framed batches of 4 MiB chunks until stopped or the node dies; keeps the hashes
    the node acknowledged."""

    def __init__(self, port: int, seed: int, base: bytes, acked: set[str]) -> None:
        super().__init__(daemon=True)
        self.port, self.seed, self.base, self.acked = port, seed, base, acked
        self.stop = threading.Event()
        self.lock = threading.Lock()
        ticket = Ticket(
            upload_id=UploadId("kill-test"), nodes=(NodeId(NODE),), expires=time.time() + 3600
        ).sign(ticket_key(TOKEN))
        self.headers = {
            "Authorization": f"Bearer {TOKEN}",
            "X-Cofre-Ticket": ticket,
            "Content-Type": CONTENT_TYPE,
        }

    @staticmethod
    def chunk(prefix: bytes, base: bytes) -> tuple[ChunkHash, bytes]:
        data = prefix.ljust(32, b".") + base[32:]
        return ChunkHash(hashlib.sha256(data).hexdigest()), data

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            items = []
            for _ in range(PER_BATCH):
                n += 1
                items.append(self.chunk(f"{self.seed}-{n}-".encode(), self.base))
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("PUT", "/v1/chunks", body=encode_frames(items), headers=self.headers)
                status = conn.getresponse().status
            except OSError:
                return  # killed
            if status in (200, 201):
                with self.lock:
                    self.acked.update(h for h, _ in items)


def test_sigkill_mid_append_loses_nothing_acknowledged_and_cuts_the_torn_record(
    tmp_path: Path, it: Any
) -> None:
    data_dir = tmp_path / "node"
    log = tmp_path / "node.log"
    base = os.urandom(CHUNK)
    acked: set[str] = set()
    port = it.free_port()
    proc = start_node(data_dir, port, log)
    writers: list[Writer] = []
    try:
        eventually_sync(lambda: ready(port), until=bool, what="node ready", timeout_s=30)
        writers = [Writer(port, i, base, acked) for i in range(WRITERS)]
        for w in writers:
            w.start()
        # Killed while the writers are in full flow: batches in flight, appends under way.
        eventually_sync(
            lambda: len(acked) >= PER_BATCH * 4, until=bool, what="batches acked", timeout_s=120
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    for w in writers:
        w.stop.set()
        w.join()
    [*_, last] = sorted((data_dir / "packs").glob("*.pack"))
    # The kill often lands inside a write (the pack then ends in part of a record); so that
    # every run has a torn tail, one more is appended as such a kill leaves it: a header and
    # part of a chunk's bytes, never acknowledged.
    good_end = scan_pack(last).good_end
    torn_h, torn = Writer.chunk(b"torn", base)
    with open(last, "ab") as fh:
        fh.write(record_header(KIND_CHUNK, torn_h, torn) + torn[: len(torn) // 3])
    assert scan_pack(last).good_end == good_end < last.stat().st_size

    port = it.free_port()
    proc = start_node(data_dir, port, log)
    try:
        eventually_sync(lambda: ready(port), until=bool, what="node restarted", timeout_s=60)
        assert last.stat().st_size == good_end  # the torn record cut
        held = stored_chunks(data_dir)
        assert torn_h not in held
        lost = acked - set(held)
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged chunks lost"
        for h in acked:
            where = held[ChunkHash(h)]
            with open(where.path, "rb") as fh:
                fh.seek(where.offset)
                assert hashlib.sha256(fh.read(where.length)).hexdigest() == h
        for pack in (data_dir / "packs").glob("*.pack"):
            scan = scan_pack(pack)
            assert scan.good_end == scan.size and scan.skipped == 0, pack
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "pack torn tail cut" in log.read_text()
