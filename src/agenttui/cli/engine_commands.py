"""The commands that run or check the engine: server, worker, doctor."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from agenttui.cli.common import EXIT_INFRA, EXIT_OK, UserError, client_settings, engine_settings, options_from_args
from agenttui.core import errors as codes

async def cmd_server(args: argparse.Namespace) -> int:
    """`agenttui server status|stop|restart` (agenttui.client.control)."""
    from agenttui.client.control import server_command

    return await server_command(args.action, client_settings(args), as_json=args.json)


async def cmd_worker(args: argparse.Namespace) -> int:
    from agenttui.engine.runtime import Engine

    settings = engine_settings(args)
    async with await Engine.open(settings) as engine:
        orchestrator = engine.orchestrator
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, orchestrator.stop)
        print(f"agenttui worker {orchestrator.owner_id}: working the queue (cap {settings.max_concurrent})", file=sys.stderr)
        if args.idle_exit:
            await orchestrator.wait_idle()
        else:
            await orchestrator.run()
    return EXIT_OK


async def cmd_doctor(args: argparse.Namespace) -> int:
    """Checks on demand; each prints ok/FAIL with what to do. Exit 0 when all pass, else 3."""
    from agenttui.backends import make_backend
    from agenttui.backends.base import InfraError

    settings = engine_settings(args)
    failed = 0
    if settings.backend == "ecs":  # each AWS resource the settings name (agenttui.backends.ecs.doctor)
        from agenttui.backends.ecs.doctor import aws_checks

        for check in await aws_checks(settings):
            mark = "ok" if check.ok and not check.warning else ("warn" if check.ok else "FAIL")
            print(f"{mark:<5} {check.name}: {check.message}")
            failed += not check.ok
        if not failed:
            failed += await doctor_provider(args, settings)
        return EXIT_OK if not failed else EXIT_INFRA
    backend = make_backend(settings)
    try:
        await backend.check()
        print(f"ok    {settings.backend} engine: reachable")
    except InfraError as exc:
        failed += 1
        print(f"FAIL  {settings.backend} engine: {exc}")
    finally:
        await backend.close()
    if not failed:
        failed += await doctor_provider(args, settings)
    return EXIT_OK if not failed else EXIT_INFRA


async def doctor_provider(args: argparse.Namespace, settings: Any) -> int:
    """The provider part of `agenttui doctor` (agenttui.sandbox.preflight); returns how many failed."""
    from agenttui.core.domain import InvalidRequest, ProviderConfig
    from agenttui.sandbox.preflight import provider_checks
    from agenttui.engine.credentials import resolve_for_submit

    probe = None
    if settings.backend == "docker":  # reachability from a sandbox like a test's
        from agenttui.backends.docker.network import probe_from_sandbox as probe
    try:
        config = ProviderConfig(name=args.provider, model_id=args.model, options=options_from_args(args))
    except ValueError as exc:
        print(f"FAIL  provider: {exc}")
        return 1
    try:
        checks = await provider_checks(settings, config, probe, resolve=resolve_for_submit)
    except InvalidRequest as exc:
        print(f"FAIL  {args.provider} configuration: {exc}")
        return 1
    for check in checks:
        mark = "ok" if check.ok and not check.warning else ("warn" if check.ok else "FAIL")
        print(f"{mark:<5} {check.name}: {check.message}")
    return sum(1 for c in checks if not c.ok)


def run_server_command(args: argparse.Namespace) -> int:
    from agenttui.server.main import ServerError, run_server

    try:
        return run_server(engine_settings(args), foreground_log=args.foreground)
    except (UserError, codes.SettingsError) as exc:  # a bad setting or store: the client that started it reports it
        print(f"agenttui: {exc}", file=sys.stderr)
        return codes.BAD_SETTING.exit
    except ServerError as exc:
        print(f"agenttui server: {exc}", file=sys.stderr)
        return EXIT_INFRA
