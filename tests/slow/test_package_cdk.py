"""Opt-in: the package's CDK app synthesizes (R-22) with the pinned aws-cdk-lib and CLI.

Installs aws-cdk-lib into a temporary venv and the aws-cdk CLI with npm into a temporary
folder (about 30 s), then runs `cdk synth` offline for each provider (5–20 s each).
scripts/test.sh (and so CI) sets AGENTTUI_TEST_CDK=1; a bare pytest run leaves it out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from agenttui.packaging import AWS_CDK_CLI_VERSION, AWS_CDK_LIB_VERSION, CONSTRUCTS_SPEC, build_package

from ..unit.test_packaging_build import API_KEY, AWS_KEY_ID, AWS_SECRET, FIXED_NOW, OPTIONS, package_record

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        os.environ.get("AGENTTUI_TEST_CDK", "") != "1",
        reason="set AGENTTUI_TEST_CDK=1 to install aws-cdk-lib and the aws-cdk CLI and run `cdk synth`",
    ),
]


def run(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def toolchain(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdk-toolchain")
    started = time.monotonic()
    run([sys.executable, "-m", "venv", str(root / "venv")])
    run([str(root / "venv" / "bin" / "pip"), "install", "-q", f"aws-cdk-lib=={AWS_CDK_LIB_VERSION}",
         f"constructs{CONSTRUCTS_SPEC}"])
    run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(root / "npm"),
         f"aws-cdk@{AWS_CDK_CLI_VERSION}"])
    print(f"\ncdk toolchain installed in {time.monotonic() - started:.1f} s")
    env = {
        **os.environ,
        "PATH": f"{root / 'venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "CDK_DISABLE_VERSION_CHECK": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    return dict(cdk=str(root / "npm" / "node_modules" / ".bin" / "cdk"), env=env)


def synth(toolchain, tmp_path: Path, provider: str, *context: str, cdk_out: list | None = None) -> tuple[dict, str]:
    options = dict(OPTIONS[provider])
    # Seeded secrets: the synthesized app must not contain them either.
    options.update({"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "OPENAI_API_KEY": API_KEY})
    record = package_record(provider, options=options)
    result = build_package(record, tmp_path / "out", base_image="python:3.11-slim", now=FIXED_NOW)
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(tmp_path / "x")
    cdk_dir = tmp_path / "x" / result.top_folder / "cdk"
    extra = [arg for item in context for arg in ("-c", item)]
    started = time.monotonic()
    proc = run([toolchain["cdk"], "synth", "--no-notices", "-q", *extra], cwd=cdk_dir, env=toolchain["env"])
    print(f"\ncdk synth ({provider}) took {time.monotonic() - started:.1f} s")
    if cdk_out is not None:
        cdk_out.append(cdk_dir / "cdk.out")
    template_path = cdk_dir / "cdk.out" / f"{result.top_folder}.template.json"
    text = template_path.read_text()
    for secret in (AWS_KEY_ID, AWS_SECRET, API_KEY):
        assert secret not in text
        for path in (cdk_dir / "cdk.out").rglob("*"):
            if path.is_file() and path.stat().st_size < 5_000_000:
                assert secret.encode() not in path.read_bytes(), f"{secret} in {path}"
    return json.loads(text), proc.stdout + proc.stderr


def resources(template: dict, kind: str) -> list[dict]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def container(template: dict) -> dict:
    (task,) = resources(template, "AWS::ECS::TaskDefinition")
    (definition,) = task["Properties"]["ContainerDefinitions"]
    return definition


def common_checks(template: dict) -> None:
    (task,) = resources(template, "AWS::ECS::TaskDefinition")
    assert task["Properties"]["RequiresCompatibilities"] == ["FARGATE"]
    assert task["Properties"]["Cpu"] == "1024" and task["Properties"]["Memory"] == "2048"
    assert len(resources(template, "AWS::Logs::LogGroup")) == 1
    definition = container(template)
    assert definition["LogConfiguration"]["LogDriver"] == "awslogs"
    assert definition["LinuxParameters"]["InitProcessEnabled"] is True
    names = {e["Name"] for e in definition.get("Environment", [])}
    assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "OPENAI_API_KEY"}
    assert "RunTaskCommand" in template["Outputs"]


def policy_actions(template: dict) -> set[str]:
    actions: set[str] = set()
    for policy in resources(template, "AWS::IAM::Policy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            value = statement["Action"]
            actions.update([value] if isinstance(value, str) else value)
    return actions


def test_bedrock_stack_grants_invoke_model(toolchain, tmp_path):
    template, _ = synth(toolchain, tmp_path, "bedrock")
    common_checks(template)
    assert {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"} <= policy_actions(template)
    env = {e["Name"]: e["Value"] for e in container(template)["Environment"]}
    assert env["AWS_REGION"] == "eu-west-1" and env["MODEL_ID"].startswith("us.anthropic.")
    assert "Secrets" not in container(template)


@pytest.mark.parametrize("source", ["secretsmanager", "ssm"])
def test_openai_stack_reads_the_key_as_a_secret(toolchain, tmp_path, source):
    template, _ = synth(toolchain, tmp_path, "openai", f"secrets_from={source}")
    common_checks(template)
    (secret,) = container(template)["Secrets"]
    assert secret["Name"] == "OPENAI_API_KEY"
    value_from = json.dumps(secret["ValueFrom"])
    assert (":secretsmanager:" in value_from) == (source == "secretsmanager")
    assert (":ssm:" in value_from) == (source == "ssm")
    assert not any(a.startswith("bedrock:") for a in policy_actions(template))


def test_ollama_stack_warns_about_the_placeholder_host(toolchain, tmp_path):
    template, output = synth(toolchain, tmp_path, "ollama")
    common_checks(template)
    env = {e["Name"]: e["Value"] for e in container(template)["Environment"]}
    assert env["OLLAMA_HOST"] == "http://ollama.example.internal:11434"
    assert "OLLAMA_HOST is a placeholder" in output


def test_staged_image_asset_builds_and_answers(toolchain, tmp_path):
    """`cdk deploy` builds the staged asset with these arguments: it must build and answer."""
    from ..conftest import TEST_BASE_IMAGE, docker_problem

    if docker_problem() is not None:
        pytest.skip(docker_problem())
    out: list[Path] = []
    synth(toolchain, tmp_path, "openai", f"base_image={TEST_BASE_IMAGE}", cdk_out=out)
    (assets_file,) = out[0].glob("*.assets.json")
    (image,) = json.loads(assets_file.read_text())["dockerImages"].values()
    source = image["source"]
    asset_dir = out[0] / source["directory"]
    assert not (asset_dir / "cdk").exists() and not (asset_dir / ".env").exists()
    tag = f"agenttui-pkgtest-asset-{os.getpid()}:latest"
    build_args = [a for k, v in source.get("dockerBuildArgs", {}).items() for a in ("--build-arg", f"{k}={v}")]
    try:
        run(["docker", "build", "-q", "--network", "none", *build_args, "--platform", source["platform"],
             "--label", "agenttui.package-test=1", "-t", tag, str(asset_dir)])
        proc = run(["docker", "run", "--rm", "--label", "agenttui.package-test=1", tag, "from the asset"])
        assert proc.stdout == "sunny (metric) for: from the asset\n"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
