"""kopf handlers for BackupCluster: thin, each one a call to ``reconcile``.

Create, update and resume run a pass at once; a timer runs one every few seconds, which moves a
scale-down along as the manager drains and keeps status (and any deleted child) current.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

import kopf

from cofre.kube import open_api
from cofre.operator.reconcile import Context, Target, reconcile
from cofre.operator.settings import OperatorConfig
from cofre.operator.spec import GROUP, PLURAL, VERSION, SpecError, parse_spec
from cofre.protocol.client import open_session

log = logging.getLogger(__name__)

# seconds between timer passes: drain progress and readiness show up within this.
RECONCILE_INTERVAL_S = 10.0
_STACK = "stack"
_CONTEXT = "context"


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    # Only explicit events (kopf.event) reach the BackupCluster, not every log line.
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "cofre.dev/operator"
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    config = memo.get("config")
    if not isinstance(config, OperatorConfig):
        from cofre.config import load

        config = load(OperatorConfig)
    stack = AsyncExitStack()
    api = await stack.enter_async_context(open_api())
    http = await stack.enter_async_context(open_session(timeout_s=10.0))
    memo[_STACK] = stack
    memo[_CONTEXT] = Context(api=api, http=http, default_image=config.image)
    log.info("operator started image=%s namespaces=%s", config.image, config.namespaces or "all")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    stack = memo.get(_STACK)
    if isinstance(stack, AsyncExitStack):
        await stack.aclose()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def changed(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    await _pass(body, spec, status, patch, memo)


@kopf.timer(
    GROUP, VERSION, PLURAL, interval=RECONCILE_INTERVAL_S, initial_delay=RECONCILE_INTERVAL_S
)
async def tick(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    await _pass(body, spec, status, patch, memo)


async def _pass(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo
) -> None:
    context = memo[_CONTEXT]
    assert isinstance(context, Context)
    meta = body.metadata
    target = Target(
        body=body,
        name=str(meta.name),
        namespace=str(meta.namespace),
        generation=int(meta.get("generation") or 0),
    )
    try:
        parsed = parse_spec(spec)
    except SpecError as exc:
        kopf.event(body, type="Warning", reason="InvalidSpec", message=str(exc))
        raise kopf.PermanentError(str(exc)) from exc
    new_status = await reconcile(context, target, parsed, previous=dict(status))
    patch.status.update(new_status)
