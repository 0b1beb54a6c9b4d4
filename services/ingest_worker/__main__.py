"""``python -m services.ingest_worker [celery worker options]``: a Celery worker for ingest tasks."""

import sys

from services.ingest_worker.celery_app import app

if __name__ == "__main__":
    app.worker_main(["worker", "--loglevel", "INFO", "--pool", "threads", *sys.argv[1:]])
