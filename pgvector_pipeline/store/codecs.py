"""How a set's CSVs are stored: plain, zstd or gzip. The one home of codec names, file suffixes and levels.

A codec turns the CSV bytes COPY writes into the bytes a store keeps, and back, streaming: an encoder
takes chunks and returns chunks, a decoder the same the other way, so memory stays flat whatever the
table's size. zstandard is imported only when a zstd set is written or read.
"""

import os
import zlib
from dataclasses import dataclass
from typing import Protocol

from pgvector_pipeline.errors import InvalidParams

NONE = "none"
ZSTD = "zstd"
GZIP = "gzip"


class Encoder(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


class Decoder(Protocol):
    def decompress(self, data: bytes, /) -> bytes: ...


@dataclass(frozen=True)
class Codec:
    """One way of storing a CSV: its name in config and manifests, its file suffix, its levels."""

    name: str
    suffix: str
    min_level: int
    max_level: int
    default_level: int

    def check_level(self, level: int | None) -> int:
        """`level`, or the codec's default for None; InvalidParams outside the codec's range."""
        if level is None:
            return self.default_level
        if not self.min_level <= level <= self.max_level:
            raise InvalidParams(
                f"Compression level {level} is not valid for {self.name}: use {self.min_level} to {self.max_level} "
                f"(default {self.default_level})."
            )
        return level

    def encoder(self, level: int | None = None, threads: int = 0) -> Encoder:
        """A streaming compressor; `threads` > 0 lets zstd compress on that many threads of its own."""
        level = self.check_level(level)
        if self.name == ZSTD:
            import zstandard

            return zstandard.ZstdCompressor(level=level, threads=threads).compressobj()
        if self.name == GZIP:
            return zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
        return _Identity()

    def decoder(self) -> Decoder:
        """A streaming decompressor (for whole files, and for the first bytes of one)."""
        if self.name == ZSTD:
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj()
        if self.name == GZIP:
            return zlib.decompressobj(31)
        return _Identity()


class _Identity:
    def compress(self, data: bytes, /) -> bytes:
        return data

    def decompress(self, data: bytes, /) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


CODECS = {
    NONE: Codec(NONE, "", 0, 0, 0),
    # Level 1: the benchmark (bench/RESULTS.md) found it both the fastest and, on vector CSVs, as small as 3.
    ZSTD: Codec(ZSTD, ".zst", 1, 19, 1),
    # Level 1: level 6 took 11x psql's time at 50,000 x 1536 for files 2 % smaller (bench/RESULTS.md).
    GZIP: Codec(GZIP, ".gz", 1, 9, 1),
}
CODEC_NAMES = tuple(CODECS)
CODEC_BY_SUFFIX = {codec.suffix: codec.name for codec in CODECS.values()}
# Errors a decoder raises on bytes that are not what the codec wrote (zstandard's are added when it loads).
DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error, ValueError)


def codec_of(name: str) -> Codec:
    """The codec called `name`; InvalidParams naming the choices otherwise."""
    codec = CODECS.get(name)
    if codec is None:
        raise InvalidParams(f"Compression {name!r:.40} is not known: choose one of {', '.join(CODEC_NAMES)}.")
    return codec


def decode_errors() -> tuple[type[Exception], ...]:
    """The exceptions a decoder raises on damaged input."""
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a dependency
        return DECODE_ERRORS
    return DECODE_ERRORS + (zstandard.ZstdError,)


@dataclass(frozen=True)
class Compression:
    """How a backup stores its CSVs: a codec and its level (None: the codec's default)."""

    codec: str = ZSTD
    level: int | None = None
    # The bytes written are already stored as `codec` (a set copied between stores): not compressed again.
    precompressed: bool = False
    # ... and already age-encrypted (an encrypted set's files copied as they are stored): kept as they are.
    preencrypted: bool = False

    def __post_init__(self) -> None:
        codec_of(self.codec).check_level(self.level)

    @classmethod
    def stored_as(cls, codec: str, encrypted: bool = False) -> "Compression":
        """Bytes already compressed with `codec` (and age-encrypted when `encrypted`), not compressed again."""
        return cls(codec, None, precompressed=True, preencrypted=encrypted)

    @property
    def suffix(self) -> str:
        return codec_of(self.codec).suffix

    def encoder(self, threads: int = 0) -> Encoder:
        return codec_of(self.codec).encoder(self.level, threads)


# Sets the old system and psql can read as they are.
UNCOMPRESSED = Compression(NONE)
DEFAULT_COMPRESSION = Compression(ZSTD)
# The code location's (or a --direct shell's) compression when a run names none.
COMPRESSION_ENV = "PGVECTOR_BACKUP_COMPRESSION"


def compression_of(codec: str, level: int | None) -> Compression:
    """The compression a backup asked for: `codec`, else $PGVECTOR_BACKUP_COMPRESSION, else zstd; resolved when the
    backup runs (InvalidParams for an unknown codec or level)."""
    return Compression(codec or os.environ.get(COMPRESSION_ENV) or DEFAULT_COMPRESSION.codec, level)
