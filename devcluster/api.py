"""A small client for the apiserver using the admin client certificate (stdlib only)."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

from devcluster import config

PKI = config.STATE_DIR / "pki"


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class Api:
    def __init__(self, cert_name: str = "admin", timeout: float = 10.0) -> None:
        self._ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
        self._ctx.load_cert_chain(str(PKI / f"{cert_name}.crt"), str(PKI / f"{cert_name}.key"))
        self._timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        conn = http.client.HTTPSConnection(
            config.API_IP, config.API_PORT, context=self._ctx, timeout=self._timeout
        )
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status >= 300:
            raise ApiError(resp.status, text)
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def healthy(self, path: str = "/readyz") -> bool:
        try:
            return bool(self.request("GET", path) == "ok")
        except (OSError, ApiError, ssl.SSLError):
            return False
