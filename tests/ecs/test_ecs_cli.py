"""The real `agenttui` command with the ecs backend against moto: submit, package, doctor."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import urllib.request
import zipfile

from .conftest import BUCKET, World, create_world


async def run_cli(agenttui_cmd, *args: str, timeout: float = 90) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *agenttui_cmd, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ)
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode(), err.decode()


async def test_submit_in_process_then_package_with_a_presigned_url(world, fargate, agenttui_cmd, tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text("def run(query):\n    print('thinking about', query)\n    return query.upper()\n")
    code, out, err = await run_cli(agenttui_cmd, "--in-process", "submit", str(agent), "-q", "hello fargate")
    assert code == 0, (out, err)
    assert "thinking about hello fargate" in out
    assert "HELLO FARGATE" in out and "COMPLETED" in out
    (sim,) = fargate.sims
    assert sim.tags["agenttui.test_id"] == "1"

    code, out, err = await run_cli(agenttui_cmd, "--in-process", "package", "1", "--json")
    assert code == 0, (out, err)
    result = json.loads(out)
    url = result["url"]
    assert url.startswith(f"{world.url}/{BUCKET}/agenttui/packages/")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=86400" in url  # SigV4, 24 h
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url) as response:
        downloaded = response.read()
    with open(result["path"], "rb") as handle:
        assert downloaded == handle.read()
    names = zipfile.ZipFile(io.BytesIO(downloaded)).namelist()
    assert any(name.endswith("/cdk/app.py") for name in names)

    # Expired packages are deleted (here: as seen 24 h and a bit later).
    from agenttui.backends.ecs.aws import AwsClients
    from agenttui.backends.ecs.packages import cleanup_expired_packages
    from agenttui.core.config import load_settings

    settings = load_settings()
    aws = AwsClients(settings)
    try:
        assert await cleanup_expired_packages(settings, aws) == 0
        assert world.s3_keys("agenttui/packages/")
        assert await cleanup_expired_packages(settings, aws, now=result["url_expires_at"] + 1) == 1
    finally:
        await aws.close()
    assert world.s3_keys("agenttui/packages/") == []


async def test_doctor_reports_each_missing_resource_then_all_ok(aws_env, monkeypatch, agenttui_cmd):
    names = World(aws_env, subnet="subnet-0123456789abcdef0", security_group="sg-0123456789abcdef0").env()
    for key, value in names.items():
        monkeypatch.setenv(key, value)
    code, out, err = await run_cli(agenttui_cmd, "doctor")
    assert code == 3, (out, err)
    failed = {line.split(":")[0].removeprefix("FAIL").strip() for line in out.splitlines() if line.startswith("FAIL")}
    assert failed == {
        "ecs cluster agenttui-test",
        "task definition agenttui-runner",
        "log group /agenttui/runner",
        "s3 bucket agenttui-test-bucket",
        "subnet subnet-0123456789abcdef0",
        "security group sg-0123456789abcdef0",
    }, out
    assert re.search(r"^ok +aws credentials: ", out, re.M)
    assert "aws ecs create-cluster --cluster-name agenttui-test" in out
    assert "aws logs create-log-group --log-group-name /agenttui/runner" in out

    made = create_world(aws_env)
    for key, value in made.env().items():
        monkeypatch.setenv(key, value)
    code, out, err = await run_cli(agenttui_cmd, "doctor")
    assert code == 0, (out, err)
    assert "FAIL" not in out
    for name in ("ecs cluster agenttui-test", "task definition agenttui-runner", "s3 bucket agenttui-test-bucket",
                 f"subnet {made.subnet}", f"security group {made.security_group}"):
        assert re.search(rf"^(ok|warn) +{re.escape(name)}: ", out, re.M), (name, out)
    assert "Container Insights off" in out  # said so, as a warning

    # A task definition that logs elsewhere than the settings say is caught.
    from agenttui.backends.ecs.doctor import aws_checks
    from agenttui.core.config import load_settings

    checks = await aws_checks(load_settings(ecs_log_stream_prefix="other", ecs_runner_image="other:1"))
    (bad,) = [c for c in checks if not c.ok]
    assert bad.name == "task definition agenttui-runner"
    assert "awslogs-stream-prefix is 'agenttui'" in bad.message and "ecs_runner_image says 'other:1'" in bad.message
