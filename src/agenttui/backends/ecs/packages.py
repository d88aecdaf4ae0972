"""Deployment packages in S3 (R-23): with the AWS backend configured, every package zip is also
put in the bucket and shared through a presigned URL valid for 24 hours (SigV4). Expired
package objects are deleted on the next upload and by the ecs backend's maintenance."""

from __future__ import annotations

import dataclasses
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agenttui.backends.ecs.aws import AwsClients, describe_error
from agenttui.core.config import Settings

if TYPE_CHECKING:
    from agenttui.packaging import PackageResult

PACKAGE_URL_TTL_S = 24 * 3600


def package_prefix(settings: Settings) -> str:
    return f"{settings.s3_prefix}packages/"


def wants_s3_packages(settings: Settings) -> bool:
    return settings.backend == "ecs" and bool(settings.s3_bucket)


async def delete_older_than(aws: AwsClients, bucket: str, prefix: str, cutoff: float) -> int:
    """Delete the objects under `prefix` last modified before `cutoff` (epoch seconds)."""
    s3 = await aws.client("s3")
    deleted = 0
    token: str | None = None
    while True:
        params: dict[str, Any] = dict(Bucket=bucket, Prefix=prefix)
        if token:
            params["ContinuationToken"] = token
        page = await s3.list_objects_v2(**params)
        old = [
            {"Key": item["Key"]}
            for item in page.get("Contents") or []
            if item["LastModified"].timestamp() < cutoff
        ]
        for start in range(0, len(old), 1000):
            await s3.delete_objects(Bucket=bucket, Delete={"Objects": old[start : start + 1000], "Quiet": True})
            deleted += len(old[start : start + 1000])
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return deleted


async def cleanup_expired_packages(settings: Settings, aws: AwsClients, now: float | None = None) -> int:
    """Delete package objects whose presigned URLs have expired."""
    now = time.time() if now is None else now
    return await delete_older_than(aws, settings.s3_bucket, package_prefix(settings), now - PACKAGE_URL_TTL_S)


async def upload_package(
    settings: Settings, path: Path, *, aws: AwsClients | None = None, now: float | None = None
) -> tuple[str, str, float, list[str]]:
    """Put the zip in S3; return (key, presigned URL, URL expiry epoch, warnings)."""
    owned = aws is None
    aws = aws or AwsClients(settings)
    now = time.time() if now is None else now
    warnings: list[str] = []
    try:
        s3 = await aws.client("s3")
        key = f"{package_prefix(settings)}{int(now)}-{secrets.token_hex(4)}/{path.name}"
        expires_at = now + PACKAGE_URL_TTL_S
        await s3.put_object(
            Bucket=settings.s3_bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType="application/zip",
            ServerSideEncryption="AES256",
            Metadata={"expires-at": str(int(expires_at))},
        )
        url = await s3.generate_presigned_url(
            "get_object", Params={"Bucket": settings.s3_bucket, "Key": key}, ExpiresIn=PACKAGE_URL_TTL_S
        )
        credentials_expire = await aws.credentials_expiry()
        if credentials_expire is not None and credentials_expire < expires_at:
            when = datetime.fromtimestamp(credentials_expire, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            warnings.append(
                f"the presigned URL stops working at {when}, when the credentials that signed it expire "
                "(sign with longer-lived credentials for a full 24 hours)"
            )
        try:
            await cleanup_expired_packages(settings, aws, now)
        except Exception as exc:  # never fail an upload because of housekeeping
            warnings.append(f"could not delete expired packages from S3: {describe_error(exc)}")
        return key, url, expires_at, warnings
    finally:
        if owned:
            await aws.close()


async def publish_package(settings: Settings, result: PackageResult) -> PackageResult:
    """The package result with its S3 key and 24-hour URL, or with a warning when the upload
    failed (the local zip is still there)."""
    try:
        key, url, expires_at, warnings = await upload_package(settings, result.path)
    except Exception as exc:
        return dataclasses.replace(
            result,
            warnings=[*result.warnings, f"could not upload the package to s3://{settings.s3_bucket}: {describe_error(exc)}"],
        )
    return dataclasses.replace(
        result, url=url, url_expires_at=expires_at, s3_key=key, warnings=[*result.warnings, *warnings]
    )
