"""Logging set-up, the same for every cofre process: one format, one stream, one call."""

from __future__ import annotations

import logging
import sys

# Services: a timestamp, since their logs are read later (kubectl logs, local up's log files).
SERVICE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The CLI: read as it runs, next to the command's own output.
CLI_FORMAT = "%(levelname)s %(name)s %(message)s"


def setup_logging(level: str, *, fmt: str = SERVICE_FORMAT) -> None:
    """Log records at ``level`` and above to stderr. ``level`` is a checked level name
    (cofre.config.LogLevel), so a bad one was already reported as a config error."""
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    # asyncio's own chatter says nothing about cofre's objects: its debug lines, and the
    # "socket.send() raised exception." WARNING it repeats for each write to a TLS connection
    # a dead peer closed, which cofre reports itself, once, naming the peer.
    logging.getLogger("asyncio").setLevel(max(logging.ERROR, logging.getLogger().level))
