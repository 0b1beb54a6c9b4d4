"""``python -m services.embedder``: the embedder service on MEDIASEARCH_EMBEDDER_HOST/PORT."""

import uvicorn

from services.embedder.app import configure_logging, create_app
from shared.settings import Settings


def main() -> None:
    configure_logging()
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.embedder_host, port=settings.embedder_port,
                log_level="info", access_log=False)


if __name__ == "__main__":
    main()
