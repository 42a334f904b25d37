"""Which manager to talk to and with which token.

Each setting is taken from the first place that has it: the command-line flag, then the
environment (COFRE_MANAGER, COFRE_TOKEN; set in a Kubernetes pod), then the state file of a
running `cofre local up` in the default data dir (./.cofre-local, or COFRE_DATA_DIR).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cofre.cli.exitcodes import UsageError
from cofre.cli.localstate import default_data_dir, pid_alive, read_state
from cofre.errors import Unavailable

MANAGER_ENV = "COFRE_MANAGER"
# The name cofre.config.ClientConfig derives; accepted too so both spellings work.
MANAGER_ENV_ALT = "COFRE_MANAGER_URL"
TOKEN_ENV = "COFRE_TOKEN"
PARALLELISM_ENV = "COFRE_PARALLELISM"
DEFAULT_PARALLELISM = 4


@dataclass(frozen=True, kw_only=True)
class Context:
    manager_url: str
    token: str
    parallelism: int = DEFAULT_PARALLELISM


def resolve(
    *,
    manager: str | None,
    token: str | None,
    parallelism: int | None,
    env: Mapping[str, str],
    data_dir: Path | None = None,
) -> Context:
    state_dir = data_dir if data_dir is not None else default_data_dir(env)
    state = read_state(state_dir)
    state_url = str(state.get("manager_url") or "") if state else ""
    state_token = str(state.get("token") or "") if state else ""
    url = manager or env.get(MANAGER_ENV) or env.get(MANAGER_ENV_ALT) or state_url
    tok = token or env.get(TOKEN_ENV) or state_token
    pid = int(state.get("pid") or 0) if state else 0
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
    return Context(
        manager_url=url.rstrip("/"),
        token=tok,
        parallelism=_parallelism(parallelism, env),
    )


def _parallelism(flag: int | None, env: Mapping[str, str]) -> int:
    if flag is not None:
        value = flag
    elif env.get(PARALLELISM_ENV):
        try:
            value = int(env[PARALLELISM_ENV])
        except ValueError:
            raise UsageError(f"{PARALLELISM_ENV} must be a whole number") from None
    else:
        value = DEFAULT_PARALLELISM
    if not 1 <= value <= 64:
        raise UsageError("parallelism must be between 1 and 64")
    return value
