"""How long a library rescan takes when nothing changed: a generated tree of small files (100,000 by
default, 100 to a folder), scanned once (every file new: a location and a queued item each), then again
(only stats: no hashing, no catalog write but the scan time). The issue asks for under 60 s at 100,000.

    python bench/bench_rescan.py [--files 100000] [--per-folder 100] [--dir /tmp/where]

Prints the figures and writes them to bench/results/rescan.md. Nothing is ingested (no worker runs): the
first scan's items are only queued in the catalog.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from shared import catalog
from shared.catalog import libraries as catalog_libraries
from shared.libraries.scan import ScanServices, scan_library
from shared.media_store import MediaStore
from shared.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "rescan.md"


def make_tree(root: Path, files: int, per_folder: int) -> None:
    """``files`` small files, ``per_folder`` to a folder, in folders of years and months."""
    for number in range(files):
        folder = root / f"{2000 + number // (per_folder * 12) % 30}" / f"{number // per_folder:06d}"
        if number % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IMG_{number:06d}.JPG").write_bytes(number.to_bytes(4, "big"))


def timed_scan(library_id: int, services: ScanServices):
    started = time.perf_counter()
    report = scan_library(library_id, services)
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--per-folder", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None, help="where to generate the tree (default: a temp folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-rescan-", dir=args.dir))
    try:
        root = work / "roots" / "library"
        started = time.perf_counter()
        make_tree(root, args.files, args.per_folder)
        print(f"generated {args.files} files in {time.perf_counter() - started:.1f} s under {root}", flush=True)
        settings = Settings(data_dir=work / "data", ingest_roots=[work / "roots"])
        conn = catalog.connect(settings.catalog_path)
        library_id = catalog_libraries.insert_library(conn, "Bench", str(root))
        queued: list[int] = []
        services = ScanServices(conn, settings, MediaStore(settings.data_path), queued.extend, lambda ids: None)
        first, report = timed_scan(library_id, services)
        print(f"first scan (every file new): {first:.1f} s, {report.queued} items queued", flush=True)
        os.sync()
        again, report = timed_scan(library_id, services)
        assert (report.files, report.queued, report.hashed) == (args.files, 0, 0), report
        rate = args.files / again
        print(f"unchanged rescan of {args.files} files in {report.folders} folders: {again:.1f} s "
              f"({rate:,.0f} files/s; no hashing, nothing queued)", flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# Library rescan (bench/bench_rescan.py)\n\n"
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"a generated tree of {args.files} small files, {args.per_folder} to a folder.\n\n"
            "| scan | seconds | files/s |\n|---|---|---|\n"
            f"| first (every file new: a location and a queued item each) | {first:.1f} | {args.files / first:,.0f} |\n"
            f"| unchanged rescan (stats only) | {again:.1f} | {rate:,.0f} |\n")
        conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
