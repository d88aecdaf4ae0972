"""One aioboto3 session with reused clients, for the ecs backend, S3 packages and `doctor`.

Every client shares the settings' region and endpoint (moto/LocalStack in tests) and botocore's
adaptive retry mode, which backs off and rate-limits itself when AWS throttles.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from agenttui.core.config import Settings

MAX_ATTEMPTS = 8  # botocore's own retries (adaptive mode) before an error reaches us
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
ERROR_BUDGET_S = 300.0  # AWS errors tolerated this long before a test is given up


def botocore_config(settings: Settings) -> Any:
    from botocore.config import Config

    s3: dict[str, str] = {}
    if settings.aws_endpoint_url:
        s3["addressing_style"] = "path"  # an emulator on 127.0.0.1 has no bucket subdomains
    return Config(
        retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        signature_version="s3v4",  # presigned URLs: SigV4 (SigV2 is gone from most regions)
        s3=s3 or None,
    )


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or "")
    return ""


def describe_error(exc: BaseException) -> str:
    code = error_code(exc)
    text = str(exc)
    return text if code and code in text else f"{type(exc).__name__}: {text}"


class AwsClients:
    """Lazily opened aioboto3 clients, one per service, kept until close()."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._session: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._clients: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    @property
    def session(self) -> Any:
        if self._session is None:
            import aioboto3

            self._session = aioboto3.Session(region_name=self.settings.aws_region or None)
        return self._session

    async def client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is not None:
            return client
        async with self._lock:
            if service not in self._clients:
                if self._stack is None:
                    self._stack = contextlib.AsyncExitStack()
                self._clients[service] = await self._stack.enter_async_context(
                    self.session.client(
                        service,
                        endpoint_url=self.settings.aws_endpoint_url or None,
                        config=botocore_config(self.settings),
                    )
                )
            return self._clients[service]

    async def credentials_expiry(self) -> float | None:
        """Epoch seconds when the signing credentials expire (None: they do not, or unknown)."""
        try:
            credentials = await self.session.get_credentials()
        except Exception:
            return None
        expiry = getattr(credentials, "_expiry_time", None)
        if expiry is None:
            return None
        try:
            return expiry.timestamp()
        except AttributeError:
            return None

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._clients.clear()
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()


class RateLimiter:
    """At most `rate` calls per second, shared by every caller (a simple spacing limiter)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)
