"""`python -m cofre.operator`: run the BackupCluster operator (kopf, standalone: one replica)."""

from __future__ import annotations

import argparse
import logging
import sys

import kopf

from cofre.config import ConfigError, add_flags, load
from cofre.operator import handlers  # noqa: F401  (registers the handlers)
from cofre.operator.settings import OperatorConfig


class _QuietRoutine(logging.Filter):
    """Demote kopf's per-pass success lines (the timer runs every few seconds) to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith("Timer 'tick' succeeded"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cofre.operator",
        description=(
            "Run the BackupCluster operator (kopf, standalone: one replica). "
            "Settings: defaults < COFRE_* environment < flags."
        ),
    )
    add_flags(parser, OperatorConfig)
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG (--log-level DEBUG)")
    args = parser.parse_args(argv)
    try:
        config = load(OperatorConfig, args=args)
    except ConfigError as exc:
        print(f"cofre operator: error: {exc}", file=sys.stderr)
        sys.exit(2)
    level = logging.DEBUG if args.verbose else logging.getLevelName(config.log_level)
    # kopf installs its own handler and format (cofre.logsetup is for the aiohttp services).
    kopf.configure(verbose=level <= logging.DEBUG)
    logging.getLogger().setLevel(level)
    logging.getLogger("kopf.objects").addFilter(_QuietRoutine())
    # Probes ask every few seconds; their access lines say nothing.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    namespaces = list(config.namespaces)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=config.liveness,
        memo=kopf.Memo(config=config),
    )


if __name__ == "__main__":
    main()
