"""Getting files into a job: browser uploads (multipart, streamed to disk). Server-side folders are
libraries, indexed in place (services/gateway/libraries.py; POST /ingest scans one once).

An upload is parsed as it arrives and each file part is written straight to
``uploads/<job_id>/<n>``: nothing is held in memory and the client's file name is only recorded,
never used to build a path. A file whose name cannot be recorded safely (``..``, NUL, too long)
does not fail the upload: it becomes a failed item with the reason, and the other files go on.
Limits (files per upload, bytes per file, bytes per upload, form fields, headers per part) fail the
whole request (TooLarge), and whatever was written for it is removed. So does a data volume without
room for it (InsufficientStorage): an upload that would leave less than MEDIASEARCH_DISK_RESERVE_BYTES
free is refused before a byte is written, and one that fills the disk while it is written is removed.
"""

from __future__ import annotations

import codecs
import contextlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import parse_options_header

from services.gateway.state import Gateway
from shared import catalog
from shared.durable import DISK_FULL, ensure_room, is_disk_full
from shared.errors import (
    BadInput,
    InsufficientStorage,
    TooLarge,
    Unavailable,
    UnsupportedType,
    too_large_message,
)
from shared.live_photos import pair_live_photos
from shared.media_store import UnsafeNameError, clean_relative_name
from shared.settings import Settings

FILES_FIELD = "files"
FOLDER_FIELD = "folder"
MAX_TEXT_FIELD_BYTES = 4096
MAX_TEXT_FIELDS = 16  # form fields besides the files (the form has one: folder)
MAX_PART_HEADERS = 8  # header lines per part
MAX_PART_HEADER_BYTES = 4096 + 128  # one header line: a file name of MAX_NAME_BYTES, escaped, fits
MAX_SHOWN_NAME = 300


@dataclass
class ReceivedFile:
    raw_name: str
    stored_path: str  # relative to the data dir; "" when the name was refused
    name: str = ""  # the cleaned relative name
    refused: str | None = None  # why the name cannot be recorded
    size: int = 0
    handle: BinaryIO | None = None

    @property
    def shown_name(self) -> str:
        return self.name or self.raw_name.replace("\0", "\\0")[:MAX_SHOWN_NAME] or "(no name)"


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    file: ReceivedFile | None = None
    text: bytearray = field(default_factory=bytearray)
    field_name: str = ""


class UploadReceiver:
    """Feeds a multipart body to python-multipart and turns its callbacks into file writes.

    The parser callbacks run inside ``feed`` on the event loop; they only queue work. Disk writes
    happen in ``flush`` on a worker thread.
    """

    def __init__(self, settings: Settings, data_dir: Path, job_dir: str, boundary: bytes, charset: str):
        self.settings = settings
        self.data_dir = data_dir
        self.job_dir = job_dir
        self.charset = charset
        self.files: list[ReceivedFile] = []
        self.fields: dict[str, str] = {}
        self.text_fields = 0
        self.total_bytes = 0
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._pending: list[Callable[[], None]] = []
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._on_part_begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }, max_header_count=MAX_PART_HEADERS, max_header_size=MAX_PART_HEADER_BYTES)

    # -- parser callbacks (event loop; no I/O) ------------------------------------------------------
    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode(self.charset)
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_end(self) -> None:
        self._part.headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        part = self._part
        _, options = parse_options_header(part.headers.get(b"content-disposition", b"").decode("latin-1"))
        if b"name" not in options:
            raise BadInput("a multipart part has no field name (Content-Disposition name=...)")
        part.field_name = self._decode(options[b"name"])
        if b"filename" not in options:
            self.text_fields += 1
            if self.text_fields > MAX_TEXT_FIELDS:
                raise TooLarge(f"too many form fields: at most {MAX_TEXT_FIELDS} besides the files")
            return
        if part.field_name != FILES_FIELD:
            raise BadInput(f"unexpected file field {part.field_name[:100]!r}: send files as {FILES_FIELD!r}")
        if len(self.files) >= self.settings.max_upload_files:
            raise TooLarge(f"too many files: at most {self.settings.max_upload_files} per upload")
        raw_name = self._decode(options[b"filename"])
        received = ReceivedFile(raw_name=raw_name, stored_path=f"{self.job_dir}/{len(self.files)}")
        try:
            received.name = clean_relative_name(raw_name)
        except UnsafeNameError as exc:
            received.refused = f"refused file name: {exc}"
            received.stored_path = ""
        self.files.append(received)
        part.file = received
        if received.refused is None:
            self._pending.append(lambda: self._open(received))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        self.total_bytes += size
        if self.total_bytes > self.settings.max_upload_bytes:
            raise TooLarge(upload_too_large(self.settings))
        received = self._part.file
        if received is None:
            if len(self._part.text) + size > MAX_TEXT_FIELD_BYTES:
                raise BadInput(f"form field {self._part.field_name[:100]!r} is longer than "
                               f"{MAX_TEXT_FIELD_BYTES} bytes")
            self._part.text.extend(data[start:end])
            return
        received.size += size
        if received.size > self.settings.max_file_bytes:
            raise TooLarge(f"file {received.shown_name!r} is larger than the limit of "
                           f"{self.settings.max_file_bytes} bytes per file")
        if received.refused is None:
            chunk = bytes(data[start:end])
            self._pending.append(lambda: received.handle.write(chunk))

    def _on_part_end(self) -> None:
        received = self._part.file
        if received is None:
            if self._part.field_name in self.fields:
                raise BadInput(f"form field {self._part.field_name[:100]!r} is sent more than once")
            self.fields[self._part.field_name] = self._decode(bytes(self._part.text))
        elif received.refused is None:
            self._pending.append(lambda: self._close(received))

    # -- disk (worker thread) ------------------------------------------------------------------------
    def _open(self, received: ReceivedFile) -> None:
        # Another upload may have filled the volume since this one was let in: keep the reserve.
        ensure_room(self.data_dir / self.job_dir, 0, self.settings.disk_reserve_bytes, "the upload")
        path = self.data_dir / received.stored_path
        path.parent.mkdir(parents=True, exist_ok=True)
        received.handle = open(path, "wb")  # noqa: SIM115 (stays open across chunks; closed in _close)

    @staticmethod
    def _close(received: ReceivedFile) -> None:
        received.handle.close()
        received.handle = None

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            for action in pending:
                action()
        except OSError as exc:
            if is_disk_full(exc):
                raise InsufficientStorage(f"{DISK_FULL}: the data volume filled up while the upload was "
                                          "stored; nothing of it was kept: free some space and send it again"
                                          ) from exc
            raise

    def close_all(self) -> None:
        """Close what a failed upload left open (its files are removed next: a full disk's failing close
        says nothing new)."""
        for received in self.files:
            if received.handle is not None:
                handle, received.handle = received.handle, None
                with contextlib.suppress(OSError):
                    handle.close()

    async def receive(self, chunks: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in chunks:
                self._parser.write(chunk)
                if self._pending:
                    await anyio.to_thread.run_sync(self.flush)
            self._parser.finalize()
        except MultipartParseError as exc:
            if str(exc).startswith("Maximum header"):  # the parser's own count and size limits per part
                raise TooLarge(f"a multipart part has too many or too long headers: at most {MAX_PART_HEADERS} "
                               f"of {MAX_PART_HEADER_BYTES} bytes each") from exc
            raise BadInput(f"malformed multipart body: {exc}") from exc
        except FormParserError as exc:
            raise BadInput(f"malformed multipart body: {exc}") from exc
        finally:
            await anyio.to_thread.run_sync(self.close_all)


def multipart_boundary(content_type: str) -> tuple[bytes, str]:
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedType("send the files as multipart/form-data (a 'files' part per file)")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "utf-8"
    return params[b"boundary"], charset


def upload_folder_name(fields: dict[str, str], files: list[ReceivedFile]) -> str:
    """The folder the user picked: the form field, else the first path part all the files share."""
    if fields.get(FOLDER_FIELD, "").strip():
        try:
            return clean_relative_name(fields[FOLDER_FIELD].strip())
        except UnsafeNameError as exc:
            raise BadInput(f"bad folder name: {exc}") from exc
    tops = {f.name.split("/", 1)[0] for f in files if f.name}
    if len(tops) == 1 and all("/" in f.name for f in files if f.name):
        return tops.pop()
    return ""


async def receive_upload(gateway: Gateway, content_type: str, content_length: str | None,
                         chunks: AsyncIterator[bytes]) -> str:
    """Stream a multipart upload to disk, then create its job and enqueue its files; returns the job id."""
    settings = gateway.settings
    declared = int(content_length) if content_length and content_length.isdigit() else None
    if declared is not None and declared > settings.max_upload_bytes:
        raise TooLarge(upload_too_large(settings))
    boundary, charset = multipart_boundary(content_type)
    await anyio.to_thread.run_sync(ensure_room, settings.uploads_dir, declared or 0, settings.disk_reserve_bytes,
                                   "the upload")
    job_id = catalog.new_job_id()
    job_dir = gateway.upload_dir(job_id)
    receiver = UploadReceiver(settings, settings.data_path, job_dir.relative_to(settings.data_path).as_posix(),
                              boundary, charset)
    try:
        await receiver.receive(chunks)
        if not receiver.files:
            raise BadInput(f"the upload holds no files (send each file as a {FILES_FIELD!r} part)")
        folder = upload_folder_name(receiver.fields, receiver.files)
    except BaseException:
        await remove_upload(job_dir)
        raise
    files, motions = live_photo_items(receiver.files)
    try:
        return await anyio.to_thread.run_sync(lambda: create_and_enqueue(gateway, "upload", folder, files, job_id,
                                                                         motions))
    except Unavailable:  # the queue is down: the job is marked failed, its files are of no use
        await remove_upload(job_dir)
        raise
    except (OSError, sqlite3.Error) as exc:  # the catalog could not record the job: its files are of no use
        if not is_disk_full(exc):
            raise
        await remove_upload(job_dir)
        raise InsufficientStorage(f"{DISK_FULL}: the catalog could not record the upload; nothing of it was "
                                  "kept: free some space and send it again") from exc


async def remove_upload(job_dir: Path) -> None:
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(job_dir, ignore_errors=True))


def upload_too_large(settings: Settings) -> str:
    return too_large_message("the upload", settings.max_upload_bytes, "MEDIASEARCH_MAX_UPLOAD_BYTES")


def live_photo_items(received: list[ReceivedFile]) -> tuple[list[tuple[str, str, str | None]], dict[str, str]]:
    """The items of an upload, ``(name, stored path, refusal or None)``, and its Live Photos' clips
    (shared/live_photos.py), ``{photo's stored path: clip's stored path}``: a clip travels with its photo,
    not as an item of its own."""
    kept = [f for f in received if f.refused is None]
    pairs = pair_live_photos((f.name, f.size) for f in kept)
    stored = {f.name: f.stored_path for f in kept}
    clips = set(pairs.values())
    files = [(f.shown_name, f.stored_path, f.refused) for f in received if f.refused is not None or f.name not in clips]
    return files, {stored[photo]: stored[clip] for photo, clip in pairs.items()}


def create_and_enqueue(gateway: Gateway, source: str, folder: str, files: list[tuple[str, str, str | None]],
                       job_id: str | None = None, motions: dict[str, str] | None = None) -> str:
    """A job with one item per ``(name, stored path, refusal reason or None)``; queues the acceptable ones.
    ``motions`` gives photos their Live Photo clip: ``{photo's stored path: clip's stored path}``."""
    conn = gateway.catalog()
    job_id, item_ids = catalog.create_job(conn, source, folder, [(name, stored) for name, stored, _ in files],
                                          job_id=job_id)
    refused = {item_id: reason for item_id, (_, _, reason) in zip(item_ids, files) if reason}
    catalog.mark_items_failed(conn, refused)
    if motions:
        catalog.set_item_motions(conn, {item_id: motions[stored] for item_id, (_, stored, _) in zip(item_ids, files)
                                        if stored in motions})
    try:
        gateway.queue.ingest([item_id for item_id in item_ids if item_id not in refused])
    except Unavailable as exc:  # the broker is down: the job cannot run, say so on the job itself
        catalog.fail_job(conn, job_id, f"could not queue the files: {exc.__cause__}")
        raise
    return job_id
