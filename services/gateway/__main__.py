"""``python -m services.gateway``: the public HTTP service on MEDIASEARCH_GATEWAY_HOST:PORT."""

import uvicorn

from services.gateway.app import create_app
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    # A short graceful shutdown: open event streams would otherwise hold the process for their lifetime.
    uvicorn.run(create_app(settings), host=settings.gateway_host, port=settings.gateway_port,
                timeout_graceful_shutdown=3, log_level="info")


if __name__ == "__main__":
    main()
