"""``python -m cofre.storage_node [flags]``: serve one storage node until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from cofre.config import ConfigError, NodeConfig, add_flags, load
from cofre.logsetup import setup_logging
from cofre.protocol.server import serving_tls
from cofre.storage_node.app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cofre.storage_node",
        description="Serve a cofre storage node (settings: defaults < COFRE_* env < flags).",
    )
    add_flags(parser, NodeConfig)
    args = parser.parse_args(argv)
    try:
        config = load(NodeConfig, args=args)
    except ConfigError as exc:
        print(f"cofre storage node: error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    # aiohttp's access log is a line per chunk: only at DEBUG.
    debug = logging.getLogger().level <= logging.DEBUG
    try:
        app = create_app(config)
        ssl_context = serving_tls(app, config.tls)
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            ssl_context=ssl_context,
            print=None,
            handle_signals=True,
            access_log=logging.getLogger("aiohttp.access") if debug else None,
        )
    except ConfigError as exc:
        print(f"cofre storage node: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Port taken, data dir not creatable: a user error, not a crash.
        logging.getLogger("cofre.storage_node").error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
