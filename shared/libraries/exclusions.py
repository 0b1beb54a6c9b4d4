"""What a library scan skips: the clutter NAS boxes and operating systems leave in photo folders, hidden
files and folders, and the user's own patterns (MEDIASEARCH_LIBRARY_EXCLUDE).

A pattern is a glob (fnmatch, case-insensitive). Without a '/' it is matched against the name of every
file and folder (``*.tmp``, ``Private``); with one, against the path relative to the library's folder
(``2019/drafts``, ``*/cache/*``). A folder that matches is not walked at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate

# Synology (@eaDir, #recycle, #snapshot), QNAP (.@__thumb: hidden anyway), Windows ($RECYCLE.BIN, System Volume
# Information, Thumbs.db, desktop.ini), macOS (._* AppleDouble files, .DS_Store, .Trashes: hidden anyway),
# Linux (.Trash-1000, .thumbnails: hidden anyway, lost+found), and photo editors' sidecars (Lightroom and
# darktable .xmp, iPhone edits .aae), which hold no pixels.
CLUTTER = ("@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "System Volume Information", "lost+found",
           "Thumbs.db", "desktop.ini", "*.xmp", "*.aae")


class Exclusions:
    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns = [pattern.strip() for pattern in patterns if pattern.strip()]
        names = [p for p in (*CLUTTER, *self.patterns) if "/" not in p]
        paths = [p.strip("/") for p in self.patterns if "/" in p]
        self._name = re.compile("|".join(translate(p) for p in names), re.IGNORECASE) if names else None
        self._path = re.compile("|".join(translate(p) for p in paths), re.IGNORECASE) if paths else None

    def skips(self, name: str, relative: str) -> bool:
        """Whether the file or folder ``name`` at ``relative`` (its path in the library) is left out.
        Hidden entries (a leading dot: .Trash-1000, .thumbnails, ._IMG_1.JPG, .DS_Store) always are."""
        if name.startswith("."):
            return True
        if self._name is not None and self._name.match(name):
            return True
        return self._path is not None and self._path.match(relative) is not None
