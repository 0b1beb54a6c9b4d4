"""``python -m services.index``: one index shard on MEDIASEARCH_INDEX_HOST/PORT."""

import uvicorn

from services.index.app import create_app
from shared.logs import configure_logging
from shared.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    shard = f"-{settings.index_shard_id}" if settings.index_shard_count > 1 else ""
    configure_logging(f"index{shard}", settings)
    # log_config=None keeps configure_logging's handler; requests are logged by shared/metrics.py.
    uvicorn.run(create_app(settings), host=settings.index_host, port=settings.index_port,
                log_level=settings.log_level.lower(), log_config=None, access_log=False)
