"""What a file really is, judged from its first bytes: never from its name or the type a client declared."""

from __future__ import annotations

from dataclasses import dataclass

SNIFF_BYTES = 64


class BadInput(Exception):
    """A file that cannot be ingested as it is; ``str(exc)`` is the reason shown to the user."""


@dataclass(frozen=True)
class MediaType:
    kind: str  # 'image' or 'video'
    mime: str
    extension: str  # for the stored original


JPEG = MediaType("image", "image/jpeg", ".jpg")
PNG = MediaType("image", "image/png", ".png")
GIF = MediaType("image", "image/gif", ".gif")
WEBP = MediaType("image", "image/webp", ".webp")
BMP = MediaType("image", "image/bmp", ".bmp")
TIFF = MediaType("image", "image/tiff", ".tif")
MP4 = MediaType("video", "video/mp4", ".mp4")
QUICKTIME = MediaType("video", "video/quicktime", ".mov")
MATROSKA = MediaType("video", "video/x-matroska", ".mkv")
WEBM = MediaType("video", "video/webm", ".webm")
AVI = MediaType("video", "video/x-msvideo", ".avi")

# ISO base media brands (bytes 8..12 after "ftyp") that are still pictures we do not decode.
_UNSUPPORTED_STILL_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF",
                             b"avis": "AVIF"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
# zip (also empty and spanned), gzip, 7z, rar, bzip2, xz, zstd: never unpacked (a zip bomb stays a file).
_ARCHIVE_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh",
                   b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def sniff(head: bytes) -> MediaType:
    """The media type of a file from its first ``SNIFF_BYTES`` bytes; raises BadInput otherwise."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head[:2] == b"BM" and len(head) >= 26:
        return BMP
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _UNSUPPORTED_STILL_BRANDS:
            raise BadInput(f"unsupported image format ({_UNSUPPORTED_STILL_BRANDS[brand]})")
        if brand in _AUDIO_BRANDS:
            raise BadInput("not an image or video (content looks like audio)")
        return QUICKTIME if brand == b"qt  " else MP4
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return QUICKTIME  # old QuickTime files without an ftyp box
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM if b"webm" in head else MATROSKA
    if head.startswith(_ARCHIVE_MAGICS):
        raise BadInput("an archive or compressed file: archives are not expanded; upload the files in it")
    raise BadInput(f"not an image or video ({_describe_unknown(head)})")


def _describe_unknown(head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return "content looks like a PDF document"
    if head.startswith((b"ID3", b"OggS", b"fLaC")) or (head[:4] == b"RIFF" and head[8:12] == b"WAVE"):
        return "content looks like audio"
    if _looks_like_text(head):
        return "content looks like text"
    return "unrecognised content"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sniffed bytes is still text.
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
