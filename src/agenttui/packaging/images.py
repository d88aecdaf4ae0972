"""The engine's id of the base image, recorded in a package's README."""

from __future__ import annotations


async def lookup_image_id(image: str, *, timeout: float = 5.0) -> str | None:
    """The engine's id of `image` (sha256:…, plus its registry digest when it has one), for
    the README; None when the engine or the image is unavailable. Never raises."""
    import asyncio

    try:
        import aiodocker

        async with aiodocker.Docker() as docker:
            info = await asyncio.wait_for(docker.images.inspect(image), timeout)
    except Exception:
        return None
    image_id = info.get("Id")
    digests = info.get("RepoDigests") or []
    if image_id and digests:
        return f"{image_id} ({digests[0]})"
    return image_id or None
