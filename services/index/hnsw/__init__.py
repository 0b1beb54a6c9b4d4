"""Our own HNSW approximate nearest-neighbour index (Malkov & Yashunin), compiled with numba.

See ``index.py`` for the API, locking and persistence choices and ``persistence.py`` for the file
formats.
"""

from .index import HNSWIndex
from .persistence import IndexFileError

__all__ = ["HNSWIndex", "IndexFileError"]
