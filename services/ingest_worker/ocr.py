"""The words in pictures: every indexed photo and kept video frame read with OCR, in the background.

A job is done, and searchable by CLIP, as soon as its files are embedded; each worker process then reads
their text with one thread of its own (``TextReader``), one media item at a time, oldest first, at a lower
CPU priority than ingest. The text is read where it is legible: a photo's original (not its 512-px frame)
and a video's kept frames decoded again from the original at their timestamps, both at up to
``ocr_max_side`` pixels. Lines, with their boxes and confidence, go to the catalog (shared/catalog/
frame_text.py), where a trigram index finds them (shared/text_match.py).

The engine is PaddleOCR's PP-OCR (detection, angle classification, recognition) as packaged by rapidocr
on ONNX Runtime, with its models inside the wheel: nothing is downloaded. It runs on the reader's own
thread (one ONNX Runtime thread), so it takes one core at most while ingest has the rest. Originals are
decoded again as ingest decodes them, in a decoder process with the file's time limit (isolation.py): a
crash, an out-of-memory kill or a hang costs that item's text, not the worker.

A file that cannot be read (gone from its library, unreadable) fails alone with its reason; a reader that
dies mid-item leaves a claim that another live worker takes over (``ocr_max_attempts`` in all).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image

from services.ingest_worker import plugins, staging
from services.ingest_worker.images import decode_image, fit
from services.ingest_worker.isolation import ChildDied, Descriptor, run_isolated
from services.ingest_worker.sniff import SNIFF_BYTES, BadInput, sniff
from services.ingest_worker.video import frames_at
from shared import catalog
from shared.catalog import TextLine
from shared.errors import NotFound, Unavailable
from shared.libraries.originals import open_original
from shared.media_store import MediaStore
from shared.safe_open import OpenedFile, RefusedFile, descriptor_path, open_beneath
from shared.settings import Settings

log = logging.getLogger("mediasearch.ocr")
BACKGROUND_NICE = 10  # the reader's thread yields the CPU to ingest
FRAMES_PER_DECODE = 8  # a video's frames decoded again per call of a decoder process (pictures come back by pipe)
UNAVAILABLE_RETRY_S = 600.0  # an original out of reach (a library's share not mounted) is tried again after this


class TextEngine:
    """PP-OCR through rapidocr, loaded on first use (about 2 s), one ONNX Runtime thread."""

    def __init__(self, min_confidence: float):
        self.min_confidence = min_confidence
        self._engine = None
        self._lock = threading.Lock()

    def _loaded(self):
        with self._lock:
            if self._engine is None:
                from rapidocr import RapidOCR  # a second of imports; workers with OCR off never pay it

                logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # "no text detected" is no warning here
                self._engine = RapidOCR(params={
                    "Global.log_level": "error", "Global.text_score": self.min_confidence,
                    "EngineConfig.onnxruntime.intra_op_num_threads": 1,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1})
            return self._engine

    def read(self, image: Image.Image) -> list[TextLine]:
        """The lines of text in ``image``, top to bottom, with boxes as fractions of its width and height."""
        result = self._loaded()(image.convert("RGB"))
        if result.boxes is None or result.txts is None:
            return []
        width, height = image.size
        lines = [TextLine(text=text.strip(), confidence=round(float(confidence), 4),
                          box=[[round(float(x) / width, 5), round(float(y) / height, 5)] for x, y in box])
                 for box, text, confidence in zip(result.boxes, result.txts, result.scores)
                 if text.strip() and confidence >= self.min_confidence]
        return sorted(lines, key=lambda line: (min(y for _, y in line["box"]), min(x for x, _ in line["box"])))


# -- one media item ---------------------------------------------------------------------------------
def open_media_original(conn: sqlite3.Connection, media: catalog.MediaRow, settings: Settings,
                        store: MediaStore) -> OpenedFile:
    """Its stored copy beneath the media folder, or one of its library files; BadInput when there is none,
    Unavailable while its library's folder is not there (a share not mounted: read later)."""
    try:
        if media["path"]:
            return open_beneath(store.resolve(media["path"]), [settings.media_dir])
        return open_original(conn, media["id"], settings)
    except (NotFound, RefusedFile, FileNotFoundError) as exc:
        raise BadInput(f"the original could not be opened: {exc}") from None


def pictures(source: OpenedFile, media: catalog.MediaRow, frames: list[catalog.FrameRow],
             settings: Settings) -> Iterator[tuple[int, Image.Image]]:
    """``(frame id, picture)`` for each frame of the media: the photo itself, or each kept video frame,
    decoded from the original at up to ocr_max_side pixels in a decoder process (isolation.py: a crash,
    an out-of-memory kill or the file's time limit costs this item's text, not the worker); BadInput then."""
    def decoded(kind: str, timestamps: list[float]) -> list[tuple[int, Image.Image]]:
        try:
            return run_isolated(decode_pictures, (Descriptor(source.fd), kind, timestamps, settings),
                                lambda duration: staging.time_limit(settings, source.size, duration))
        except ChildDied as exc:
            raise BadInput(f"decoding it again for its text failed: {exc}") from None

    if media["kind"] == "video":
        timed = [frame for frame in frames if frame["timestamp"] is not None]
        for start in range(0, len(timed), FRAMES_PER_DECODE):
            chunk = timed[start:start + FRAMES_PER_DECODE]
            for index, picture in decoded("video", [frame["timestamp"] for frame in chunk]):
                yield chunk[index]["id"], picture
        return
    (_, picture), = decoded("image", [])
    for frame in frames:
        yield frame["id"], picture


def decode_pictures(source: Descriptor, kind: str, timestamps: list[float], settings: Settings,
                    on_duration: Callable[[float], None] | None = None) -> list[tuple[int, Image.Image]]:
    """In a decoder process: the photo (``[(0, picture)]``) or the video's frames at ``timestamps``
    (``(index, picture)``), RGB, upright, at up to ocr_max_side pixels. Raises BadInput."""
    path = Path(descriptor_path(source.fd))
    if kind == "video":
        return list(frames_at(path, timestamps, settings.ocr_max_side, settings.max_image_pixels))
    with open(path, "rb") as file:
        head = file.read(SNIFF_BYTES)
    decoders = plugins.load(settings.decoder_plugins)
    media_type = plugins.sniff_plugin(head, decoders) or sniff(head)
    plugin = plugins.decoder_for(media_type, decoders)
    if plugin is None:
        return [(0, decode_image(path, media_type, settings.max_image_pixels, settings.ocr_max_side).frame)]
    picture = plugin.decode(path, settings.max_image_pixels, settings.ocr_max_side)
    if picture.width * picture.height > settings.max_image_pixels:
        raise BadInput(f"{picture.width}x{picture.height} pixels is more than the limit of "
                       f"{settings.max_image_pixels} (MEDIASEARCH_MAX_IMAGE_PIXELS)")
    return [(0, fit(picture.convert("RGB"), settings.ocr_max_side))]


def read_media(conn: sqlite3.Connection, media: catalog.MediaRow, engine: TextEngine, settings: Settings,
               store: MediaStore, stopping: Callable[[], bool] = lambda: False) -> dict[int, list[TextLine]] | None:
    """The lines read in each frame of ``media`` (``{frame id: lines}``); None when ``stopping`` said stop
    midway. BadInput when its original cannot be opened or decoded."""
    frames = catalog.frames_of_media(conn, media["id"])
    lines: dict[int, list[TextLine]] = {}
    with open_media_original(conn, media, settings, store) as source:
        for frame_id, picture in pictures(source, media, frames, settings):
            if stopping():
                return None
            lines[frame_id] = engine.read(picture)
    return lines


# -- the background reader ---------------------------------------------------------------------------
class TextReader(threading.Thread):
    """Reads the text of indexed media until stopped: claims one item, reads it, records its lines."""

    def __init__(self, settings: Settings, worker_id: str, alive: Callable[[str], bool],
                 engine: TextEngine | None = None):
        super().__init__(name="text-reader", daemon=True)
        self.settings, self.worker_id, self.alive = settings, worker_id, alive
        self.engine = engine or TextEngine(settings.ocr_min_confidence)
        self.store = MediaStore(settings.data_path)
        self._stop_event = threading.Event()
        self._later: dict[int, float] = {}  # media whose original was unavailable: not before this monotonic time

    def stop(self, timeout: float | None = None) -> None:
        self._stop_event.set()
        self.join(timeout)

    def run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)  # this thread only (Linux)
        except OSError:
            pass
        conn = catalog.connect(self.settings.catalog_path)
        try:
            while not self._stop_event.is_set():
                try:
                    worked = self.read_one(conn)
                except Exception:  # noqa: BLE001 (the catalog busy, Redis away: the reader keeps going)
                    log.exception("text reader: a pass failed; trying again")
                    worked = False
                if not worked:
                    self._stop_event.wait(self.settings.ocr_idle_poll_s)
        finally:
            conn.close()

    def read_one(self, conn: sqlite3.Connection) -> bool:
        """Read one unread media item; False when there was none."""
        now = time.monotonic()
        self._later = {media_id: until for media_id, until in self._later.items() if until > now}
        media = catalog.claim_unread(conn, self.worker_id, self.alive, self.settings.ocr_max_attempts,
                                     frozenset(self._later))
        if media is None:
            return False
        try:
            lines = read_media(conn, media, self.engine, self.settings, self.store, self._stop_event.is_set)
        except (Unavailable, sqlite3.OperationalError) as exc:  # passing: its library's share, a busy catalog
            log.info("media %s (%s): its text is read later: %s", media["id"], media["name"], exc)
            catalog.release_text(conn, media["id"], self.worker_id)
            self._later[media["id"]] = now + UNAVAILABLE_RETRY_S
            return True
        except BadInput as exc:
            log.warning("media %s (%s): its text could not be read: %s", media["id"], media["name"], exc)
            catalog.text_failed(conn, media["id"], self.worker_id, str(exc))
            return True
        except Exception as exc:  # noqa: BLE001 (a bug must cost this item's text, not the reader)
            log.exception("media %s (%s): reading its text failed", media["id"], media["name"])
            catalog.text_failed(conn, media["id"], self.worker_id,
                                f"internal error while reading text: {type(exc).__name__}: {exc}")
            return True
        if lines is None:
            catalog.release_text(conn, media["id"], self.worker_id)
            return False
        catalog.record_text(conn, media["id"], self.worker_id, lines)
        found = sum(len(frame_lines) for frame_lines in lines.values())
        log.info("media %s (%s): %d line(s) of text in %d frame(s)", media["id"], media["name"], found, len(lines))
        return True
