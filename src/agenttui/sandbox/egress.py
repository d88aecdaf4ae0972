"""Egress policy of a test → the network plan its sandbox gets (docs/providers.md).

- none: the container has no network at all (Docker network mode "none": only loopback).
- provider-only (default): no network either; the model endpoint is offered through a tunnel.
  A small helper container (the "net sidecar") owns the sandbox's network namespace, which has
  nothing but loopback; it listens on a loopback address of that namespace for each endpoint
  and carries every connection over a Unix socket, bind-mounted from the host, to agenttui's
  forwarder (agenttui.sandbox.forwarder), which connects to the configured endpoint and nothing else.
  The agent's container joins the sidecar's namespace (network mode "container:<sidecar>"), and
  the endpoint's host name is pinned to that loopback address in the sandbox's /etc/hosts, so the
  URL the agent is given works unchanged (TLS included: the forwarder reads inside it with a
  certificate of agenttui's CA, which the test's container trusts, or with the setting
  tls_interception off lets the bytes pass untouched; agenttui.sandbox.interception).
  Nothing else exists to connect to: not the host's gateway, other containers or the host's
  loopback — enforced by the kernel, not advised.
- full: Docker's default bridge network (internet, whatever the host exposes on its network
  addresses); endpoints on the host's loopback are still offered through the tunnel.

Image builds are not affected: they use the engine's default network (pip reaches its index).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

from agenttui.core.domain import Egress
from agenttui.core.providers import HOST_ALIAS, Endpoint

FIRST_TUNNEL_OCTET = 2  # 127.0.0.1 stays the sandbox's own loopback


@dataclass(frozen=True)
class Tunnel:
    name: str  # provider endpoint name ("ollama", "openai", "bedrock")
    socket: str  # Unix socket file name in the tunnel folder
    listen_host: str  # loopback address in the sandbox
    listen_port: int
    container_host: str  # the name (or address) the agent uses
    target_host: str  # where the host-side forwarder connects
    target_port: int
    scheme: str  # http | https (the probe speaks it)
    probe_path: str | None
    url: str  # the endpoint as configured (host side)
    sandbox_url: str  # the endpoint as the agent reaches it


@dataclass(frozen=True)
class NetworkPlan:
    egress: Egress
    tunnels: tuple[Tunnel, ...] = ()
    pins: tuple[tuple[str, str], ...] = ()  # (name, address) lines of the sandbox's /etc/hosts
    preflight: bool = True

    @property
    def isolated(self) -> bool:
        """No network of its own (none, provider-only)."""
        return self.egress is not Egress.FULL

    def to_json(self, **extra: object) -> str:
        data = {
            "egress": self.egress.value,
            "tunnels": [asdict(t) for t in self.tunnels],
            "pins": [list(p) for p in self.pins],
            "preflight": self.preflight,
            **extra,
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetworkPlan:
        data = json.loads(text)
        return cls(
            egress=Egress.parse(data["egress"]),
            tunnels=tuple(Tunnel(**t) for t in data.get("tunnels", [])),
            pins=tuple((a, b) for a, b in data.get("pins", [])),
            preflight=bool(data.get("preflight", True)),
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _with_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def plan_network(egress: Egress, endpoints: Iterable[Endpoint], *, preflight: bool = True) -> tuple[NetworkPlan, dict[str, str]]:
    """The plan for a test's sandbox, and the endpoint URLs to give the container (env var → URL)."""
    if egress is Egress.NONE:
        return NetworkPlan(egress, preflight=False), {}
    tunnels: list[Tunnel] = []
    pins: dict[str, str] = {}
    urls: dict[str, str] = {}
    seen: set[tuple[str, int]] = set()
    octet = FIRST_TUNNEL_OCTET
    for endpoint in endpoints:
        if egress is Egress.FULL and not endpoint.is_loopback:
            continue  # reachable over the bridge as it is
        if endpoint.is_loopback:
            name = HOST_ALIAS  # inside a container "localhost" is the container itself
        elif _is_ip(endpoint.host):
            name = ""  # an address cannot be pinned: the agent gets the tunnel's own address
        else:
            name = endpoint.host
        if name and name in pins:
            address = pins[name]
        else:
            address = f"127.0.0.{octet}"
            octet += 1
            if name:
                pins[name] = address
        if (address, endpoint.port) in seen:
            continue
        seen.add((address, endpoint.port))
        sandbox_url = _with_host(endpoint.url, name or address)
        tunnels.append(
            Tunnel(
                name=endpoint.name,
                socket=f"{len(tunnels)}.sock",
                listen_host=address,
                listen_port=endpoint.port,
                container_host=name or address,
                target_host=endpoint.host,
                target_port=endpoint.port,
                scheme=endpoint.scheme,
                probe_path=endpoint.probe_path,
                url=endpoint.url,
                sandbox_url=sandbox_url,
            )
        )
        if endpoint.env_var:
            urls[endpoint.env_var] = sandbox_url
    if egress is Egress.PROVIDER_ONLY and HOST_ALIAS not in pins:
        # The name resolves in every sandbox (to nothing listening), so agents fail fast.
        pins[HOST_ALIAS] = "127.0.0.1"
    return NetworkPlan(egress, tuple(tunnels), tuple(sorted(pins.items())), preflight and bool(tunnels)), urls
