"""`python -m cofre.operator`: run the BackupCluster operator (kopf, standalone: one replica)."""

from __future__ import annotations

import argparse
import logging
import sys

import kopf

from cofre.config import ConfigError, add_flags, load
from cofre.operator import handlers  # noqa: F401  (registers the handlers)
from cofre.operator.settings import OperatorConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cofre.operator", description=__doc__)
    add_flags(parser, OperatorConfig)
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG")
    args = parser.parse_args(argv)
    try:
        config = load(OperatorConfig, args=args)
    except ConfigError as exc:
        sys.exit(f"cofre operator: {exc}")
    kopf.configure(verbose=args.verbose)
    logging.getLogger("cofre").setLevel(logging.DEBUG if args.verbose else logging.INFO)
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
