"""python -m cofre.manager: run the manager service."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from cofre.config import ConfigError, ManagerConfig, add_flags, load
from cofre.logsetup import setup_logging
from cofre.manager.app import create_app
from cofre.protocol.server import serving_tls

log = logging.getLogger("cofre.manager")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cofre.manager",
        description=(
            "The cofre manager: placement, catalog, commit, GC, fsck, drain. "
            "Settings: defaults < COFRE_* environment < flags."
        ),
    )
    add_flags(parser, ManagerConfig)
    args = parser.parse_args(argv)
    try:
        config = load(ManagerConfig, args=args)
        setup_logging(config.log_level)
        app = create_app(config)
        ssl_context = serving_tls(app, config.tls)
    except ConfigError as exc:
        print(f"cofre manager: error: {exc}", file=sys.stderr)
        return 2
    log.info(
        "manager starting address=%s:%d tls=%s data_dir=%s discovery=%s replication_factor=%d "
        "primary_keeps_copy=%s",
        config.host,
        config.port,
        config.tls.enabled,
        config.data_dir,
        config.discovery.backend,
        config.placement.replication_factor,
        config.placement.primary_keeps_copy,
    )
    # run_app turns SIGTERM/SIGINT into a graceful shutdown running every cleanup_ctx.
    web.run_app(app, host=config.host, port=config.port, ssl_context=ssl_context, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
