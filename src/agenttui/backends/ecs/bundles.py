"""The agent bundle: the zip a task's runner fetches (agent, requirements, harness, environment), kept in S3."""

from __future__ import annotations

import io
import json
import logging
import zipfile

from agenttui.backends.base import InfraError, RunSpec
from agenttui.backends.ecs.aws import AwsClients, describe_error
from agenttui.backends.ecs.packages import delete_older_than
from agenttui.core.config import Settings
from agenttui.harness import harness_files

log = logging.getLogger(__name__)

BUNDLE_URL_TTL_S = 2 * 3600  # only needed until the task has started and fetched it
BUNDLE_MAX_AGE_S = 24 * 3600  # maintenance deletes bundles older than this


def task_env(spec: RunSpec) -> dict[str, str]:
    """The test's environment for a task: endpoint URLs as configured, not as the Docker
    sandbox's tunnels would present them (a task reaches endpoints over its own network)."""
    tunnels = spec.network.tunnels if spec.network is not None else ()
    untunnel = {t.sandbox_url: t.url for t in tunnels}
    return {key: untunnel.get(value, value) for key, value in spec.env.items()}


def build_bundle(spec: RunSpec) -> bytes:
    """The zip the runner fetches: agent, requirements, harness (runner and grading) and the test's environment."""
    files = {
        "agent.py": spec.request.agent_code,
        "requirements.txt": spec.request.requirements,
        **harness_files(),
        "env.json": json.dumps(task_env(spec), sort_keys=True),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o644 | 0o100000) << 16
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


class BundleStore:
    """The bundles under `s3_prefix/bundles/` of the settings' bucket."""

    def __init__(self, aws: AwsClients, settings: Settings):
        self.aws = aws
        self.settings = settings

    @property
    def prefix(self) -> str:
        return f"{self.settings.s3_prefix}bundles/"

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}.zip"

    async def presign(self, key: str) -> str:
        """A GET URL for the bundle at `key`; signing is local, no call to AWS."""
        try:
            s3 = await self.aws.client("s3")
            return await s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.settings.s3_bucket, "Key": key}, ExpiresIn=BUNDLE_URL_TTL_S
            )
        except Exception as exc:
            raise InfraError(f"cannot sign a URL for the agent bundle: {describe_error(exc)}") from exc

    async def upload(self, key: str, bundle: bytes, spec: RunSpec) -> None:
        bucket = self.settings.s3_bucket
        try:
            s3 = await self.aws.client("s3")
            await s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=bundle,
                ContentType="application/zip",
                ServerSideEncryption="AES256",
                Metadata={"agenttui-test": str(spec.test_id), "agenttui-attempt": str(spec.attempt)},
            )
        except Exception as exc:
            raise InfraError(f"cannot upload the agent bundle to s3://{bucket}/{key}: {describe_error(exc)}") from exc

    async def delete(self, key: str) -> None:
        try:
            s3 = await self.aws.client("s3")
            await s3.delete_object(Bucket=self.settings.s3_bucket, Key=key)
        except Exception as exc:  # maintenance deletes what is left over
            log.warning("could not delete the bundle s3://%s/%s: %s", self.settings.s3_bucket, key, exc)

    async def delete_expired(self, now: float) -> int:
        """Delete the bundles older than BUNDLE_MAX_AGE_S; how many were deleted."""
        if not self.settings.s3_bucket:
            return 0
        return await delete_older_than(self.aws, self.settings.s3_bucket, self.prefix, now - BUNDLE_MAX_AGE_S)
