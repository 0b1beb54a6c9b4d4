"""The library watcher: ``python -m services.watcher`` (watcher.py says what it does)."""
