"""The progress display through the real CLI: drawn in place on a pseudo-terminal, absent when
stderr is a file, and the `--json` summary's exact figures."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
import uuid
from pathlib import Path
from typing import Any

from cofre.chunks import DEFAULT_CHUNK_SIZE

PTY_TIMEOUT_S = 300.0
_LIVE = re.compile(r"\rput (\d+)/(\d+) files  [^\r\n]*/s  ETA [-:0-9]+")


def _tree(it: Any, root: Path, sizes: dict[str, int]) -> int:
    for rel, size in sizes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        it.random_file(root / rel, size)
    return sum(sizes.values())


def _screen(received: str) -> list[str]:
    """The lines a terminal shows for ``received``: \\r returns to the line's start and
    ESC [K erases to its end, as a terminal does."""
    shown: list[str] = []
    cells: list[str] = []
    col = 0
    i = 0
    while i < len(received):
        if received.startswith("\x1b[K", i):
            del cells[col:]
            i += 3
            continue
        ch = received[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            shown.append("".join(cells))
            cells, col = [], 0
        else:
            cells[col : col + 1] = [ch]
            col += 1
    if cells:
        shown.append("".join(cells))
    return shown


def _run_on_pty(argv: list[str], *, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal (as in a shell); exit code and
    everything the terminal received."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    os.set_blocking(primary, False)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=secondary,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        os.close(secondary)
    received = bytearray()
    deadline = time.monotonic() + PTY_TIMEOUT_S
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{argv} did not finish; got {bytes(received[-2000:])!r}")
            ready, _, _ = select.select([primary], [], [], 1.0)
            if not ready:
                continue
            try:
                block = os.read(primary, 65536)
            except OSError:  # EIO: every writer closed the terminal, the command is done
                break
            if not block:
                break
            received += block
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    return code, received.decode(errors="replace")


def test_put_of_a_directory_shows_one_progress_line_in_place_on_a_terminal(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    top = f"pty-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "src" / top
    # Enough to take a few redraws: big files stream chunk by chunk, the small ones batch.
    sizes = {f"big{i}": 6 * DEFAULT_CHUNK_SIZE + i for i in range(3)}
    sizes.update({f"small/s{i:02d}": 1000 + i for i in range(40)})
    _tree(it, root, sizes)
    code, received = _run_on_pty(
        [*it.cofre_argv(), "put", "--per-file", top, "--parallelism", "1"],
        env=cluster.env | {"TERM": "xterm"},
        cwd=tmp_path / "src",
    )
    assert code == 0, received[-3000:]
    live = _LIVE.findall(received)
    assert live, received[-3000:]
    # One display for the whole put: every redraw counts all of its files.
    assert {total for _, total in live} == {str(len(sizes))}, live
    done = [int(n) for n, _ in live]
    assert done == sorted(done)
    # Redrawn in place: a progress line never ends in a new line, it is overwritten or cleared;
    # and it fits the terminal's 160 columns, so \r can rewrite it.
    assert not re.search(r"\rput \d+/\d+ files[^\r\n]*\n", received)
    assert all(len(m.group(0)) <= 160 for m in _LIVE.finditer(received))
    shown = [line for line in _screen(received) if line]
    # Cleared at the end: no progress is left on the screen, which ends with the closing line.
    assert not [line for line in shown if _LIVE.match("\r" + line)], shown
    assert re.fullmatch(
        rf"backed up {len(sizes)} of {len(sizes)} files, [0-9.]+ MiB \([0-9.]+ [KM]?i?B sent\)"
        r" in [0-9.]+ s \([0-9.]+ [KMG]?i?B/s\)",
        shown[-1],
    ), shown[-1]
    # Every file's own line is there, whole, never torn by the progress line.
    for rel in sizes:
        assert any(line.startswith(f"{top}/{rel}  version 1  ") for line in shown), rel
    assert len(shown) == len(sizes) + 1, shown


def test_without_a_terminal_stderr_has_no_progress_noise(
    cluster: Any, it: Any, tmp_path: Path
) -> None:
    top = f"quiet-{uuid.uuid4().hex[:8]}"
    sizes = {"big": 3 * DEFAULT_CHUNK_SIZE, **{f"s{i}": 500 + i for i in range(10)}}
    _tree(it, tmp_path / "src" / top, sizes)
    put = cluster.cli("put", "--per-file", top, "--parallelism", "1", cwd=tmp_path / "src")
    assert put.code == 0, put.err
    assert put.err == ""
    assert "\r" not in put.out and "\x1b" not in put.out
    assert put.out.splitlines()[-1].startswith(f"backed up {len(sizes)} of {len(sizes)} files, ")
    got = cluster.cli("get", "--prefix", f"{top}/", "-o", str(tmp_path / "out"))
    assert got.code == 0, got.err
    assert got.err == ""
    assert got.out.startswith(
        f"restored {len(sizes)} of {len(sizes)} files into {tmp_path / 'out'}, "
    )
    repair = cluster.cli("repair")
    assert repair.err == "" and "\r" not in repair.out


def test_json_summaries_give_exact_counts(cluster: Any, it: Any, tmp_path: Path) -> None:
    top = f"sum-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "src" / top
    sizes = {"big": 2 * DEFAULT_CHUNK_SIZE + 3, **{f"d/s{i}": 100 * (i + 1) for i in range(6)}}
    total = _tree(it, root, sizes)
    unreadable = root / "d" / "locked"
    it.random_file(unreadable, 50)
    os.chmod(unreadable, 0)
    if os.access(unreadable, os.R_OK):  # root reads anything: no failure to count then
        os.unlink(unreadable)
    fails = 1 if unreadable.exists() else 0

    put = cluster.cli("put", "--per-file", top, "--json", cwd=tmp_path / "src")
    assert put.code == (8 if fails else 0), put.err
    doc = put.json()
    assert {k: doc[k] for k in ("files", "bytes", "bytes_sent", "failures")} == {
        "files": len(sizes),
        "bytes": total,
        "bytes_sent": total,
        "failures": fails,
    }
    assert doc["seconds"] > 0
    assert sorted(r["name"] for r in doc["results"]) == sorted(f"{top}/{r}" for r in sizes)
    assert [e["name"] for e in doc["errors"]] == ([f"{top}/d/locked"] if fails else [])

    # The same files again: new versions, and no byte of them travels.
    again = cluster.cli("put", "--per-file", top, "--json", cwd=tmp_path / "src").json()
    assert (again["files"], again["bytes"], again["bytes_sent"]) == (len(sizes), total, 0)

    got = cluster.cli("get", "--prefix", f"{top}/", "-o", str(tmp_path / "out"), "--json")
    assert got.code == 0, got.err
    restored = got.json()
    assert (restored["files"], restored["bytes"], restored["failures"]) == (len(sizes), total, 0)
    assert len(restored["results"]) == len(sizes) and restored["errors"] == []

    one = cluster.cli("get", f"{top}/big", "-o", str(tmp_path / "one"), "--json")
    assert one.code == 0, one.err
    single = one.json()
    assert (single["files"], single["bytes"], single["failures"]) == (1, sizes["big"], 0)
    assert single["results"][0]["dest"] == str(tmp_path / "one")

    both = cluster.cli("get", f"{top}/big", "-o", "-", "--json")
    assert both.code == 2 and "--json" in it.one_error_line(both)
