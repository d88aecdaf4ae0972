"""Credential resolution on the submitting side (R-18): a test's provider credentials are read
in the user's own process — boto3's default chain for Bedrock (exchanged for session
credentials through STS), the user's environment for OpenAI-compatible endpoints — and the
request is checked complete before anything is queued. A retry resolves them again.

The provider catalogue these build on (which values are secret, what a submit requires) is
agenttui.core.providers; this module does the I/O.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from agenttui.core.domain import InvalidRequest, ProviderConfig, TestRequest
from agenttui.core.providers import provider_for, split_secrets, submit_errors

# Creates the STS client used to turn long-lived keys into session credentials (tests stub it).
StsFactory = Callable[[Any], Any]


def _default_sts(session: Any) -> Any:
    return session.client("sts")


def resolve_bedrock(
    config: ProviderConfig,
    *,
    duration_s: int = 3600,
    sts_factory: StsFactory = _default_sts,
    warn: Callable[[str], None] = lambda message: None,
) -> ProviderConfig:
    """Fill a Bedrock config from the user's AWS configuration — boto3's default chain
    (environment, AWS_PROFILE/--option AWS_PROFILE, SSO, config files) —, resolved once, here, in
    the submitting user's process. Long-lived keys are exchanged for session credentials
    (STS GetSessionToken, `duration_s`); temporary ones (SSO, assumed roles) are handed over as
    they are. Given keys (options) are kept as they are."""
    options = dict(config.options)
    if "AWS_ACCESS_KEY_ID" in options or "AWS_ACCESS_KEY_ID" in config.secrets:
        return config
    import boto3
    import botocore.exceptions

    try:
        session = boto3.Session(profile_name=options.get("AWS_PROFILE") or None)
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise InvalidRequest({"provider.credentials": f"cannot read your AWS configuration: {exc}"}) from None
    region = os.environ.get("AWS_REGION") or session.region_name  # AWS_REGION: newer SDKs' name
    if "AWS_REGION" not in options and region:
        options["AWS_REGION"] = region
    if credentials is None:
        return config.model_copy(update={"options": options})
    try:
        frozen = credentials.get_frozen_credentials()
    except botocore.exceptions.BotoCoreError as exc:  # e.g. an expired SSO session
        raise InvalidRequest({"provider.credentials": f"your AWS credentials cannot be used: {exc}"}) from None
    key, secret, token = frozen.access_key, frozen.secret_key, frozen.token
    if not token:
        try:
            answer = sts_factory(session).get_session_token(DurationSeconds=duration_s)["Credentials"]
            key, secret, token = answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"]
        except Exception as exc:  # no STS access (policy, MFA required, offline): keep the keys
            warn(
                f"could not get short-lived AWS credentials (STS GetSessionToken: {exc}); "
                "the container gets your long-lived keys for this test"
            )
    options.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    if token:
        options["AWS_SESSION_TOKEN"] = token
    return config.model_copy(update={"options": options})


def resolve_from_environment(config: ProviderConfig, environ: Mapping[str, str] | None = None) -> ProviderConfig:
    """OpenAI-compatible: OPENAI_BASE_URL / OPENAI_API_KEY from the user's environment when not
    given as options (the official client's own convention)."""
    if config.name != "openai":
        return config
    environ = os.environ if environ is None else environ
    options = dict(config.options)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        if name not in options and name not in config.secrets and environ.get(name):
            options[name] = environ[name]
    return config.model_copy(update={"options": options}) if options != config.options else config


def resolve_request(
    request: TestRequest,
    *,
    duration_s: int = 3600,
    sts_factory: StsFactory = _default_sts,
    warn: Callable[[str], None] = lambda message: None,
    environ: Mapping[str, str] | None = None,
) -> TestRequest:
    """Resolve the provider's credentials on the submitting side (the user's own process), then
    check the request is complete. Raises InvalidRequest naming each missing field."""
    config = request.provider
    if config.name == "bedrock":
        config = resolve_bedrock(config, duration_s=duration_s, sts_factory=sts_factory, warn=warn)
    else:
        config = resolve_from_environment(config, environ)
    if config is not request.provider:
        request = TestRequest.parse(**{**request.model_dump(), "provider": config.model_dump()})
    errors = submit_errors(request.provider)
    if errors:
        raise InvalidRequest(errors)
    return request


def retry_secrets(
    stored: TestRequest,
    *,
    duration_s: int = 3600,
    sts_factory: StsFactory = _default_sts,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Fresh secret values for retrying a stored test (whose request keeps secret names only),
    resolved in the retrying user's process the same way a submit resolves them."""
    config = stored.provider
    if not config.secrets:
        return {}
    fresh = config.model_copy(update={"secrets": ()})
    if fresh.name == "bedrock":
        fresh = resolve_bedrock(fresh, duration_s=duration_s, sts_factory=sts_factory)
    else:
        fresh = resolve_from_environment(fresh, environ)
    missing = {name: f"the retry needs {name} again (secrets are not kept after a test ends): set it in your "
               f"environment" for name in config.secrets if name not in fresh.options}
    if fresh.name == "bedrock" and "AWS_ACCESS_KEY_ID" not in fresh.options:
        raise InvalidRequest({"provider.credentials": provider_for(fresh).required["AWS_ACCESS_KEY_ID"]})
    if missing and fresh.name != "bedrock":
        raise InvalidRequest({f"provider.options.{k}": v for k, v in missing.items()})
    _, values = split_secrets(fresh)
    return values


async def resolve_for_submit(request: TestRequest, duration_s: int) -> TestRequest:
    """resolve_request off the event loop (boto3 may read files and call STS)."""
    import asyncio
    import sys

    def warn(message: str) -> None:
        print(f"agenttui: warning: {message}", file=sys.stderr)

    return await asyncio.to_thread(resolve_request, request, duration_s=duration_s, warn=warn)


async def resolve_for_retry(stored: TestRequest, duration_s: int) -> dict[str, str]:
    import asyncio

    return await asyncio.to_thread(retry_secrets, stored, duration_s=duration_s)
