"""`agenttui doctor` for the ecs backend: each AWS resource the settings name, checked one by
one, with what to do when it is missing (docs/aws.md has the full set-up)."""

from __future__ import annotations

from typing import Any

from agenttui.backends.ecs.aws import AwsClients, describe_error, error_code
from agenttui.core.config import Settings
from agenttui.sandbox.preflight import Check


async def aws_checks(settings: Settings, aws: AwsClients | None = None) -> list[Check]:
    owned = aws is None
    aws = aws or AwsClients(settings)
    try:
        return await _checks(settings, aws)
    finally:
        if owned:
            await aws.close()


async def _checks(s: Settings, aws: AwsClients) -> list[Check]:
    checks: list[Check] = []
    region = s.aws_region or aws.session.region_name
    if not region:
        return [Check("aws region", False, "no region: set aws_region (AGENTTUI_AWS_REGION) or AWS_REGION")]
    try:
        sts = await aws.client("sts")
        identity = await sts.get_caller_identity()
        checks.append(Check("aws credentials", True, f"{identity.get('Arn')} in {region}"))
    except Exception as exc:
        checks.append(
            Check("aws credentials", False, f"no usable AWS credentials ({describe_error(exc)}); "
                  "configure them as for the AWS CLI (aws configure, AWS_PROFILE, an instance role)")
        )
        return checks  # nothing else can be checked

    checks.append(await _cluster(s, aws))
    checks += await _task_definition(s, aws)
    checks.append(await _log_group(s, aws))
    checks.append(await _bucket(s, aws))
    checks += await _network(s, aws)
    return checks


async def _cluster(s: Settings, aws: AwsClients) -> Check:
    name = f"ecs cluster {s.ecs_cluster}"
    try:
        ecs = await aws.client("ecs")
        found = await ecs.describe_clusters(clusters=[s.ecs_cluster], include=["SETTINGS"])
    except Exception as exc:
        return Check(name, False, f"cannot describe it: {describe_error(exc)}")
    clusters = [c for c in found.get("clusters") or [] if c.get("status") == "ACTIVE"]
    if not clusters:
        return Check(name, False, f"missing: aws ecs create-cluster --cluster-name {s.ecs_cluster} "
                     "(setting ecs_cluster)")
    insights = any(
        x.get("name") == "containerInsights" and x.get("value") in ("enabled", "enhanced")
        for x in clusters[0].get("settings") or []
    )
    extra = "Container Insights on (CPU/memory readings)" if insights else (
        "Container Insights off: no live CPU/memory readings (aws ecs update-cluster-settings "
        f"--cluster {s.ecs_cluster} --settings name=containerInsights,value=enabled)"
    )
    return Check(name, True, f"active; {extra}", warning=not insights)


async def _task_definition(s: Settings, aws: AwsClients) -> list[Check]:
    name = f"task definition {s.ecs_task_definition}"
    try:
        ecs = await aws.client("ecs")
        found = await ecs.describe_task_definition(taskDefinition=s.ecs_task_definition)
    except Exception as exc:
        if error_code(exc) in ("ClientException", "InvalidParameterException"):
            return [Check(name, False, "missing: register templates/ecs/task-definition.json (docs/aws.md) "
                          "or fix the setting ecs_task_definition")]
        return [Check(name, False, f"cannot describe it: {describe_error(exc)}")]
    definition: dict[str, Any] = found.get("taskDefinition") or {}
    problems = []
    if "FARGATE" not in (definition.get("requiresCompatibilities") or definition.get("compatibilities") or []):
        problems.append("it is not FARGATE-compatible")
    if definition.get("networkMode") != "awsvpc":
        problems.append("its networkMode is not awsvpc")
    containers = {c.get("name"): c for c in definition.get("containerDefinitions") or []}
    container = containers.get(s.ecs_container_name)
    if container is None:
        problems.append(
            f"it has no container named {s.ecs_container_name!r} (has {sorted(containers)}; setting ecs_container_name)"
        )
    else:
        log_config = container.get("logConfiguration") or {}
        options = log_config.get("options") or {}
        if log_config.get("logDriver") != "awslogs":
            problems.append("its container does not log with the awslogs driver")
        else:
            if options.get("awslogs-group") != s.ecs_log_group:
                problems.append(f"it logs to group {options.get('awslogs-group')!r}, the setting ecs_log_group "
                                f"says {s.ecs_log_group!r}")
            if options.get("awslogs-stream-prefix") != s.ecs_log_stream_prefix:
                problems.append(f"its awslogs-stream-prefix is {options.get('awslogs-stream-prefix')!r}, the "
                                f"setting ecs_log_stream_prefix says {s.ecs_log_stream_prefix!r}")
        if s.ecs_runner_image and container.get("image") != s.ecs_runner_image:
            problems.append(f"its image is {container.get('image')!r}, the setting ecs_runner_image says "
                            f"{s.ecs_runner_image!r} (register a new revision with the new image)")
    if problems:
        return [Check(name, False, "; ".join(problems))]
    image = container.get("image") if container else "?"
    return [Check(name, True, f"revision {definition.get('revision')}, runner image {image}")]


async def _log_group(s: Settings, aws: AwsClients) -> Check:
    name = f"log group {s.ecs_log_group}"
    try:
        logs = await aws.client("logs")
        found = await logs.describe_log_groups(logGroupNamePrefix=s.ecs_log_group)
    except Exception as exc:
        return Check(name, False, f"cannot describe it: {describe_error(exc)}")
    for group in found.get("logGroups") or []:
        if group.get("logGroupName") == s.ecs_log_group:
            retention = group.get("retentionInDays")
            return Check(name, True, f"retention {retention} days" if retention else
                         "exists; no retention set (logs are kept forever: consider put-retention-policy)",
                         warning=not retention)
    return Check(name, False, f"missing: aws logs create-log-group --log-group-name {s.ecs_log_group} "
                 "(setting ecs_log_group)")


async def _bucket(s: Settings, aws: AwsClients) -> Check:
    if not s.s3_bucket:
        return Check("s3 bucket", False, "setting s3_bucket is empty: agent bundles and packages travel through S3")
    name = f"s3 bucket {s.s3_bucket}"
    try:
        s3 = await aws.client("s3")
        await s3.head_bucket(Bucket=s.s3_bucket)
    except Exception as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return Check(name, False, f"missing: aws s3 mb s3://{s.s3_bucket} (setting s3_bucket)")
        if code in ("403", "AccessDenied", "Forbidden"):
            return Check(name, False, "exists but these credentials may not use it (s3:GetObject/PutObject/"
                         "DeleteObject/ListBucket are needed)")
        return Check(name, False, f"cannot reach it: {describe_error(exc)}")
    return Check(name, True, f"reachable; objects under {s.s3_prefix}")


async def _network(s: Settings, aws: AwsClients) -> list[Check]:
    checks: list[Check] = []
    ec2 = await aws.client("ec2")
    if not s.ecs_subnets:
        checks.append(Check("subnets", False, "setting ecs_subnets is empty: Fargate tasks need at least one subnet"))
    for subnet in s.ecs_subnets:
        try:
            found = await ec2.describe_subnets(SubnetIds=[subnet])
            vpc = (found.get("Subnets") or [{}])[0].get("VpcId")
            checks.append(Check(f"subnet {subnet}", True, f"in {vpc}"))
        except Exception as exc:
            missing = error_code(exc).endswith("NotFound") or error_code(exc) == "InvalidSubnetID.Malformed"
            checks.append(Check(f"subnet {subnet}", False, "missing (setting ecs_subnets)" if missing
                                else f"cannot describe it: {describe_error(exc)}"))
    if not s.ecs_security_groups:
        checks.append(Check("security groups", True, "none set: tasks get their VPC's default security group",
                            warning=True))
    for group in s.ecs_security_groups:
        try:
            await ec2.describe_security_groups(GroupIds=[group])
            checks.append(Check(f"security group {group}", True, "exists"))
        except Exception as exc:
            missing = error_code(exc).endswith("NotFound") or error_code(exc) == "InvalidGroupId.Malformed"
            checks.append(Check(f"security group {group}", False, "missing (setting ecs_security_groups)" if missing
                                else f"cannot describe it: {describe_error(exc)}"))
    return checks
