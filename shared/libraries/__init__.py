"""Libraries: folders on the server indexed in place, watched and rescanned (issue: "your library where it
lives"). The originals stay where they are; frames and thumbnails are made in the data volume.

- ``exclusions``: what a scan skips (NAS and OS clutter, hidden entries, MEDIASEARCH_LIBRARY_EXCLUDE)
- ``walk``: the streamed walk of a folder (one stat per file)
- ``scan``: a scan: the walk compared with the library's locations (new, changed, deleted, moved files)
- ``requests``: asking for scans and running them one at a time per library (Redis)
- ``items``: what the ingest pipeline does for a library file (open it beneath its library, record it)
- ``forget``: media with no original left out of the catalog, the index and the data volume
- ``originals``: a library media item's original, for serving

The tables are in shared/catalog/libraries.py; the API in services/gateway/libraries.py; the watcher in
services/watcher/.
"""
