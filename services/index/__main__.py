import logging

import uvicorn

from services.index.app import create_app
from shared.settings import Settings

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s index %(levelname)s %(message)s")
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.index_host, port=settings.index_port, log_level="warning")
