"""The CLI's settings, and which manager to talk to with which token.

The settings are cofre.config.ClientConfig, loaded like every component's: defaults < COFRE_*
environment < flags (e.g. --manager / COFRE_MANAGER, --token / COFRE_TOKEN, --parallelism /
COFRE_PARALLELISM). A key (--key / COFRE_KEY) is sent instead of the token when given. The
manager and token, when set nowhere, come from the state file of a
running `cofre local up` in the data dir (--data-dir / COFRE_DATA_DIR, default ./.cofre-local).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping

from cofre.cli.exitcodes import UsageError
from cofre.cli.localstate import pid_alive, read_state
from cofre.config import ClientConfig, ConfigError, load
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
    # A key given is meant: it wins over the token (a narrower role, chosen on purpose).
    tok = settings.key or settings.token or state_token
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
            "no cluster token or key: pass --token or --key, set COFRE_TOKEN or COFRE_KEY, "
            "or start `cofre local up`"
        )
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"manager URL must start with http:// or https://: {url!r}")
    return dataclasses.replace(settings, manager_url=url.rstrip("/"), token=tok, key="")
