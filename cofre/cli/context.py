"""The CLI's settings, and which manager to talk to with which token.

The settings are cofre.config.ClientConfig, loaded like every component's: defaults < COFRE_*
environment < flags (e.g. --manager / COFRE_MANAGER, --token / COFRE_TOKEN, --parallelism /
COFRE_PARALLELISM). The manager and token, when set nowhere, come from the state file of a
running `cofre local up` in the data dir (--data-dir / COFRE_DATA_DIR, default ./.cofre-local),
and with its manager its CA (unless --ca / COFRE_CA names one). Plain http:// is refused unless
--insecure / COFRE_INSECURE (or the local cluster was started with --insecure) allows it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path

from cofre.cli.exitcodes import UsageError
from cofre.cli.localstate import pid_alive, read_state
from cofre.config import ClientConfig, ConfigError, dest_name, help_text, leaves, load
from cofre.errors import Unavailable

# The settings once the manager and token are known: what every command runs with.
Context = ClientConfig


def load_settings(
    *, env: Mapping[str, str], args: argparse.Namespace | None = None
) -> ClientConfig:
    """The CLI's settings from defaults, ``env`` and the flags in ``args``; a bad value is a
    usage error naming the setting."""
    try:
        return load(ClientConfig, env=env, args=args)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def resolve(settings: ClientConfig) -> Context:
    """``settings`` with the manager and token filled in from the local cluster's state file
    where neither flags nor environment set them."""
    state_dir = settings.data_dir
    state = read_state(state_dir)
    state_url = state.manager_url if state else ""
    state_token = state.token if state else ""
    url = settings.manager_url or state_url
    tok = settings.token or state_token
    pid = state.pid if state else 0
    if url and url == state_url and pid and not pid_alive(pid):
        # A state file outlives a `local up` that was killed outright; say so plainly.
        raise Unavailable(
            f"the local cluster of {state_dir} is not running (stale state file); "
            "start it with `cofre local up`"
        )
    if not url:
        raise UsageError(
            "no manager: pass --manager URL, set COFRE_MANAGER, or start `cofre local up`"
        )
    if not tok:
        raise UsageError(
            "no cluster token: pass --token, set COFRE_TOKEN, or start `cofre local up`"
        )
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"manager URL must start with http:// or https://: {url!r}")
    local = state is not None and url == state_url
    # The local cluster's CA and its --insecure hold for its own manager, not for another.
    ca = settings.ca or (state.ca_file if state is not None and local else "")
    insecure = settings.insecure or (state.insecure if state is not None and local else False)
    if ca and not Path(ca).is_file():
        raise UsageError(f"CA file {ca} (--ca, COFRE_CA) does not exist or is not a file")
    if url.startswith("http://"):
        if not insecure:
            raise UsageError(
                f"{url} is plain HTTP, which would send the token and the data unencrypted: "
                "use its https:// URL, or pass --insecure (COFRE_INSECURE=1) to allow it"
            )
        warn_insecure(url)
    return dataclasses.replace(
        settings, manager_url=url.rstrip("/"), token=tok, ca=ca, insecure=insecure
    )


def warn_insecure(url: str) -> None:
    print(
        f"cofre: warning: plain HTTP to {url} (--insecure): the token and the data cross the "
        "network unencrypted",
        file=sys.stderr,
        flush=True,
    )


def add_insecure_flag(parser: argparse._ActionsContainer) -> None:
    """--insecure as a switch (the setting is also COFRE_INSECURE=1)."""
    leaf = next(x for x in leaves(ClientConfig) if x.key == "insecure")
    parser.add_argument(
        "--insecure",
        dest=dest_name(leaf),
        action="store_const",
        const="true",
        help=help_text(leaf).replace("%", "%%"),
    )
