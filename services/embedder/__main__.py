"""``python -m services.embedder``: the embedder service on MEDIASEARCH_EMBEDDER_HOST/PORT."""

import uvicorn

from services.embedder.app import create_app
from shared.logs import configure_logging
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("embedder", settings)
    # log_config=None keeps configure_logging's handler; requests are logged by shared/metrics.py.
    uvicorn.run(create_app(settings), host=settings.embedder_host, port=settings.embedder_port,
                log_level=settings.log_level.lower(), log_config=None, access_log=False)


if __name__ == "__main__":
    main()
