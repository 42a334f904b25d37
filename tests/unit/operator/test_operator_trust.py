"""What the operator trusts of each cluster's manager: that cluster's CA bundle, and only it."""

from __future__ import annotations

import ssl
from datetime import timedelta

import pytest

from cofre import tls
from cofre.operator.trust import TrustContexts

KEY = ("ns", "demo")


def _bundle() -> bytes:
    return tls.new_ca(common_name="ca", valid_for=timedelta(days=1)).cert


def test_a_context_lasts_as_long_as_its_bundle() -> None:
    trust = TrustContexts()
    first_bundle = _bundle()
    first = trust.context(KEY, first_bundle)
    assert trust.context(KEY, first_bundle) is first
    assert trust.context(("ns", "other"), first_bundle) is not first
    # A rotated bundle: a new context.
    second = trust.context(KEY, _bundle())
    assert second is not first
    trust.forget(KEY)
    assert trust.context(KEY, first_bundle) is not first


def test_the_context_trusts_exactly_the_bundle() -> None:
    context = TrustContexts().context(KEY, _bundle())
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1
    with pytest.raises(ssl.SSLError):
        TrustContexts().context(
            KEY, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        )
