"""How a log is stored: runs of consecutive lines (a chunk per append) as the JSON array of
their entries, exactly as clients receive them, compressed with zstandard when that pays.

A log costs about its own bytes (the entries' repeated keys compress away), a reader takes a
chunk per row instead of a row per line, and a streamed log goes out as the stored JSON: only
the chunk where a reader starts is decoded."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import msgspec
import zstandard

from agenttui.core.wire import LogEntry

# Shorter payloads are stored as they are: a zstandard frame would cost more than it saves.
COMPRESS_FROM_BYTES = 256
ZSTD_LEVEL = 3  # the library's default: fast, and a log compresses well at it
_RAW, _ZSTD = b"j", b"z"  # the first byte of a stored chunk says how the rest is stored

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[LogEntry])
_local = threading.local()  # zstandard's (de)compressors are not thread-safe; the store uses threads


def _compressor() -> zstandard.ZstdCompressor:
    if not hasattr(_local, "compressor"):
        _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        _local.decompressor = zstandard.ZstdDecompressor()
    return _local.compressor


def encode(entries: Sequence[LogEntry]) -> bytes:
    """The JSON array of entries, as clients read it."""
    return _encoder.encode(entries)


def pack(entries: Sequence[LogEntry]) -> bytes:
    """The stored form of consecutive entries."""
    raw = _encoder.encode(entries)
    if len(raw) < COMPRESS_FROM_BYTES:
        return _RAW + raw
    return _ZSTD + _compressor().compress(raw)


def json_of(chunk: bytes) -> bytes:
    """A stored chunk's entries as the JSON array clients read."""
    if chunk[:1] == _ZSTD:
        _compressor()
        return _local.decompressor.decompress(chunk[1:])
    return chunk[1:]


def unpack(chunk: bytes) -> list[LogEntry]:
    return _decoder.decode(json_of(chunk))
