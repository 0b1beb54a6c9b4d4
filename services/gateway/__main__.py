"""``python -m services.gateway``: the public HTTP service on MEDIASEARCH_GATEWAY_HOST:PORT."""

import uvicorn

from services.gateway.app import create_app
from services.gateway.head_limits import http_protocol
from shared.logs import configure_logging
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings)
    # A short graceful shutdown: open event streams would otherwise hold the process for their lifetime.
    # The HTTP protocol bounds request heads (head_limits.py); the app bounds bodies (body_limits.py).
    # log_config=None keeps configure_logging's handler; requests are logged by shared/metrics.py.
    uvicorn.run(create_app(settings), host=settings.gateway_host, port=settings.gateway_port,
                timeout_graceful_shutdown=3, log_level=settings.log_level.lower(), log_config=None,
                access_log=False, http=http_protocol())


if __name__ == "__main__":
    main()
