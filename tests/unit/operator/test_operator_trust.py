"""The operator's sessions to the managers: one per cluster, trusting that cluster's bundle."""

from __future__ import annotations

import ssl
from datetime import timedelta

import pytest

from cofre import tls
from cofre.operator.trust import TrustedSessions, context_for

KEY = ("ns", "demo")


def _bundle() -> bytes:
    return tls.new_ca(common_name="ca", valid_for=timedelta(days=1)).cert


async def test_a_session_lasts_as_long_as_its_bundle() -> None:
    sessions = TrustedSessions()
    first_bundle = _bundle()
    first = await sessions.session(KEY, first_bundle)
    assert await sessions.session(KEY, first_bundle) is first
    other = await sessions.session(("ns", "other"), first_bundle)
    assert other is not first
    # A rotated bundle: a new session, the old one closed.
    second = await sessions.session(KEY, _bundle())
    assert second is not first and first.closed and not second.closed
    await sessions.forget(KEY)
    assert second.closed and not other.closed
    await sessions.close()
    assert other.closed


def test_the_context_trusts_exactly_the_bundle() -> None:
    context = context_for(_bundle())
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        context_for(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
