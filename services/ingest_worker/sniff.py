"""What a file really is, judged from its first bytes: never from its name or the type a client declared.

Camera RAW files are mostly TIFF inside (DNG, CR2, NEF, ARW, PEF) and Canon's CR3 is an ISO media file
like MP4: they are told apart by their content (a DNG version tag, Canon's CR2 marker, a colour filter
array image in the TIFF's image directories, the CR3 brand), so ``SNIFF_BYTES`` covers the directories
at the start of a TIFF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SNIFF_BYTES = 64 * 1024


class BadInput(Exception):
    """A file that cannot be ingested as it is; ``str(exc)`` is the reason shown to the user."""


@dataclass(frozen=True)
class MediaType:
    kind: str  # 'image' or 'video'
    mime: str
    extension: str  # for the stored original
    name: str = ""  # the format, for people: "HEIC", "Canon CR3 raw"


JPEG = MediaType("image", "image/jpeg", ".jpg", "JPEG")
PNG = MediaType("image", "image/png", ".png", "PNG")
GIF = MediaType("image", "image/gif", ".gif", "GIF")
WEBP = MediaType("image", "image/webp", ".webp", "WebP")
BMP = MediaType("image", "image/bmp", ".bmp", "BMP")
TIFF = MediaType("image", "image/tiff", ".tif", "TIFF")
HEIC = MediaType("image", "image/heic", ".heic", "HEIC")
HEIF = MediaType("image", "image/heif", ".heif", "HEIF")
AVIF = MediaType("image", "image/avif", ".avif", "AVIF")
MP4 = MediaType("video", "video/mp4", ".mp4", "MP4")
QUICKTIME = MediaType("video", "video/quicktime", ".mov", "QuickTime")
MATROSKA = MediaType("video", "video/x-matroska", ".mkv", "Matroska")
WEBM = MediaType("video", "video/webm", ".webm", "WebM")
AVI = MediaType("video", "video/x-msvideo", ".avi", "AVI")

DNG = MediaType("image", "image/x-adobe-dng", ".dng", "Adobe DNG raw")
CR2 = MediaType("image", "image/x-canon-cr2", ".cr2", "Canon CR2 raw")
CR3 = MediaType("image", "image/x-canon-cr3", ".cr3", "Canon CR3 raw")
NEF = MediaType("image", "image/x-nikon-nef", ".nef", "Nikon NEF raw")
ARW = MediaType("image", "image/x-sony-arw", ".arw", "Sony ARW raw")
RAF = MediaType("image", "image/x-fuji-raf", ".raf", "Fujifilm RAF raw")
ORF = MediaType("image", "image/x-olympus-orf", ".orf", "Olympus ORF raw")
RW2 = MediaType("image", "image/x-panasonic-rw2", ".rw2", "Panasonic RW2 raw")
PEF = MediaType("image", "image/x-pentax-pef", ".pef", "Pentax PEF raw")
CAMERA_RAW = MediaType("image", "image/x-dcraw", ".raw", "camera raw")
RAW_TYPES = frozenset({DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF, CAMERA_RAW})
HEIF_TYPES = frozenset({HEIC, HEIF})

# ISO base media brands (the major brand, bytes 8..12, or a compatible one) of still pictures.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
# zip (also empty and spanned), gzip, 7z, rar, bzip2, xz, zstd: never unpacked (a zip bomb stays a file).
_ARCHIVE_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh",
                   b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
# RAW formats with a magic of their own: Olympus (TIFF with its own version numbers), Panasonic, Fujifilm.
_RAW_MAGICS = ((b"IIRO", ORF), (b"IIRS", ORF), (b"MMOR", ORF), (b"IIU\x00", RW2), (b"FUJIFILMCCD-RAW", RAF))

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
    for magic, raw in _RAW_MAGICS:
        if head.startswith(magic):
            return raw
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_or_raw(head)
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return QUICKTIME  # old QuickTime files without an ftyp box
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM if b"webm" in head[:64] else MATROSKA
    if head.startswith(_ARCHIVE_MAGICS):
        raise BadInput("an archive or compressed file: archives are not expanded; upload the files in it")
    raise BadInput(f"not an image or video ({_describe_unknown(head[:64])})")


def _iso_media(head: bytes) -> MediaType:
    """An ISO base media file (MP4, QuickTime, HEIF, AVIF, CR3) by its major brand, then its compatible ones."""
    major = head[8:12]
    box_size = int.from_bytes(head[:4], "big")
    compatible = {head[at:at + 4] for at in range(16, min(box_size, len(head)) - 3, 4)}
    if major == b"crx ":
        return CR3
    if major in _AVIF_BRANDS or (major in _HEIF_BRANDS and compatible & _AVIF_BRANDS):
        return AVIF
    if major in _HEIC_BRANDS or (major in _HEIF_BRANDS and compatible & _HEIC_BRANDS):
        return HEIC
    if major in _HEIF_BRANDS:
        return HEIF
    if major in _AUDIO_BRANDS:
        raise BadInput("not an image or video (content looks like audio)")
    return QUICKTIME if major == b"qt  " else MP4


# -- TIFF and the RAW formats built on it ---------------------------------------------------------------
_COMPRESSION, _PHOTOMETRIC, _MAKE, _SUB_IFDS, _DNG_VERSION = 259, 262, 271, 330, 50706
_RAW_PHOTOMETRICS = {32803, 34892}  # colour filter array, linear raw
_RAW_COMPRESSIONS = {32767, 32769, 32770, 34713, 65000, 65535}  # Sony, Nikon, Samsung, Kodak, Pentax
_RAW_BY_MAKE = (("NIKON", NEF), ("SONY", ARW), ("CANON", CR2), ("PENTAX", PEF), ("RICOH", PEF),
                ("OLYMPUS", ORF), ("OM DIGITAL", ORF), ("FUJIFILM", RAF), ("PANASONIC", RW2))
_MAX_IFDS = 16


def _tiff_or_raw(head: bytes) -> MediaType:
    """A TIFF, unless its content says camera RAW: Canon's CR2 marker, a DNG version, or an image
    directory holding sensor data (a colour filter array, linear raw, or a maker's raw compression).
    A TIFF exported from a RAW keeps the camera's Make but holds RGB: it stays a TIFF."""
    if head[8:11] == b"CR\x02":
        return CR2
    if len(head) < 8:
        return TIFF  # too short to hold a directory: the decoder will say it is truncated
    order = "<" if head[:2] == b"II" else ">"
    make, raw_data = "", False
    seen: set[int] = set()
    pending = [struct.unpack_from(order + "I", head, 4)[0]]
    while pending and len(seen) < _MAX_IFDS:
        offset = pending.pop(0)
        if offset in seen or not 8 <= offset <= len(head) - 2:
            continue
        seen.add(offset)
        tags = _ifd_tags(head, offset, order)
        if _DNG_VERSION in tags:
            return DNG
        make = make or _ascii(head, order, tags.get(_MAKE))
        photometric = _numbers(head, order, tags.get(_PHOTOMETRIC))
        compression = _numbers(head, order, tags.get(_COMPRESSION))
        raw_data = raw_data or bool(set(photometric) & _RAW_PHOTOMETRICS or set(compression) & _RAW_COMPRESSIONS)
        pending.extend(_numbers(head, order, tags.get(_SUB_IFDS)))
        next_at = offset + 2 + 12 * struct.unpack_from(order + "H", head, offset)[0]
        if next_at + 4 <= len(head):
            pending.append(struct.unpack_from(order + "I", head, next_at)[0])
    if not raw_data:
        return TIFF
    upper = make.upper()
    return next((raw for maker, raw in _RAW_BY_MAKE if upper.startswith(maker)), CAMERA_RAW)


def _ifd_tags(head: bytes, offset: int, order: str) -> dict[int, tuple[int, int, bytes]]:
    """The entries of the image directory at ``offset`` that lie within ``head``: tag -> (type, count,
    the 4 bytes holding the value or its offset)."""
    count = struct.unpack_from(order + "H", head, offset)[0]
    tags = {}
    for at in range(offset + 2, min(offset + 2 + 12 * count, len(head) - 11), 12):
        tag, kind, n = struct.unpack_from(order + "HHI", head, at)
        tags[tag] = (kind, n, head[at + 8:at + 12])
    return tags


_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 13: 4}  # BYTE, ASCII, SHORT, LONG, IFD
_FORMATS = {1: "B", 3: "H", 4: "I", 13: "I"}


def _value_bytes(head: bytes, order: str, entry: tuple[int, int, bytes] | None) -> tuple[int, bytes]:
    if entry is None or entry[0] not in _SIZES:
        return 0, b""
    kind, count, value = entry
    size = _SIZES[kind] * min(count, 64)
    if size <= 4:
        return kind, value[:size]
    at = struct.unpack(order + "I", value)[0]
    return kind, head[at:at + size] if at + size <= len(head) else b""


def _numbers(head: bytes, order: str, entry: tuple[int, int, bytes] | None) -> list[int]:
    kind, data = _value_bytes(head, order, entry)
    if kind not in _FORMATS:
        return []
    width = struct.calcsize(_FORMATS[kind])
    return list(struct.unpack(f"{order}{len(data) // width}{_FORMATS[kind]}", data[:len(data) // width * width]))


def _ascii(head: bytes, order: str, entry: tuple[int, int, bytes] | None) -> str:
    kind, data = _value_bytes(head, order, entry)
    return data.split(b"\0", 1)[0].decode("latin-1").strip() if kind == 2 else ""


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
