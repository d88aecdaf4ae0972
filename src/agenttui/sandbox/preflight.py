"""Preflight: is the model endpoint reachable from inside the sandbox network?

Before a test's agent starts, its net sidecar (agenttui.sandbox.egress) checks every endpoint through
the very tunnel the agent will use. When one does not answer, the agent still runs (it may not
call its model at all) and its log opens with an actionable warning; under strict preflight
(setting strict_preflight, `--strict-preflight`) the test fails at once instead, as an
infrastructure failure that is not retried. `agenttui doctor` runs the same check on demand
(`provider_checks`, through the NetworkProbe a backend gives).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agenttui.core.domain import ProviderConfig
from agenttui.core.errors import ConfigurationError, InfraError
from agenttui.core.providers import Endpoint, ollama_model_warning, unreachable_message
from agenttui.sandbox.egress import NetworkPlan


class PreflightError(ConfigurationError):
    """Under strict preflight, the provider's endpoint does not answer from inside the sandbox
    (retrying would only delay the answer)."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    warning: bool = False
    endpoint: str | None = None  # the URL checked, for an endpoint check


class NetworkProbe(Protocol):
    """Checks the endpoints of `plan` from inside a sandbox like a test's (a backend's own)."""

    async def __call__(self, settings: Any, config: ProviderConfig, plan: NetworkPlan) -> list[Check]: ...


def evaluate(
    config: ProviderConfig,
    plan: NetworkPlan,
    probes: Mapping[str, Mapping[str, Any]],
    host_errors: Mapping[str, str],
) -> list[Check]:
    """Turn the sidecar's probe reports into checks with messages a user can act on."""
    checks: list[Check] = []
    for tunnel in plan.tunnels:
        endpoint = Endpoint.from_url(tunnel.name, tunnel.url, None, tunnel.probe_path)
        report = probes.get(tunnel.name)
        if report is None:
            why = "the sandbox did not report on it"
        elif report.get("ok"):
            status = report.get("status")
            detail = f"HTTP {status}" if status else "answers"
            checks.append(Check(f"{tunnel.name} endpoint", True,
                                f"{tunnel.url} answers from the sandbox at {tunnel.sandbox_url} ({detail})",
                                endpoint=tunnel.url))
            if config.name == "ollama" and status == 200 and report.get("body"):
                warning = ollama_model_warning(config.model_id, str(report["body"]))
                if warning:
                    checks.append(Check("ollama model", True, warning, warning=True))
            continue
        else:
            why = str(report.get("detail") or "no answer")
        # The host side knows the real reason (refused, timeout) better than the sandbox.
        why = host_errors.get(tunnel.name) or why
        checks.append(Check(f"{tunnel.name} endpoint", False, unreachable_message(config, endpoint, why, tunnel.sandbox_url),
                            endpoint=tunnel.url))
    return checks


def log_note(check: Check) -> str:
    """How a check is told in the test's log when the test runs anyway."""
    if not check.ok:
        return (f"warning: {check.message}. The agent runs anyway; if it calls this model it will fail "
                "(--strict-preflight or the setting strict_preflight fails the test here instead)")
    return ("warning: " if check.warning else "preflight: ") + check.message


def endpoints_down(checks: list[Check]) -> list[str]:
    return [check.endpoint for check in checks if not check.ok and check.endpoint]


def failure_of(checks: list[Check]) -> PreflightError | None:
    failed = [c.message for c in checks if not c.ok]
    if not failed:
        return None
    return PreflightError("preflight: " + "; ".join(failed))


async def provider_checks(
    settings: Any,
    config: ProviderConfig | None = None,
    probe: NetworkProbe | None = None,
    *,
    resolve: Callable[[Any, int], Awaitable[Any]],
) -> list[Check]:
    """What `agenttui doctor` reports about a provider: the configuration (credentials resolved
    as a submit would, by `resolve`: agenttui.engine.credentials.resolve_for_submit) and, given a
    `probe` (the docker backend has one), reachability from a sandbox like a test's."""
    from agenttui.core.domain import Egress, InvalidRequest, TestRequest
    from agenttui.sandbox.egress import plan_network
    from agenttui.core.providers import endpoints

    config = config or ProviderConfig()
    checks: list[Check] = []
    request = TestRequest.parse(agent_code="def run(q):\n    return q\n", query="doctor", provider=config)
    try:
        request = await resolve(request, settings.aws_session_duration_s)
        checks.append(Check(f"{config.name} configuration", True, "credentials and settings are complete"))
    except InvalidRequest as exc:
        checks.append(Check(f"{config.name} configuration", False, "; ".join(f"{k}: {v}" for k, v in exc.errors.items())))
        return checks
    plan, _urls = plan_network(
        Egress.PROVIDER_ONLY, endpoints(request.provider, ollama_url=settings.ollama_url)
    )
    if probe is None or not plan.tunnels:
        return checks
    try:
        checks += await probe(settings, request.provider, plan)
    except InfraError as exc:
        checks.append(Check(f"{config.name} endpoint", False, str(exc)))
    return checks
