"""``python -m users``: serve the users service with uvicorn (uvloop, httptools)."""

from __future__ import annotations

import uvicorn

from users.settings import UsersSettings


def main() -> None:
    settings = UsersSettings()
    uvicorn.run(
        "users.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        server_header=False,
        proxy_headers=False,
        access_log=False,
        timeout_graceful_shutdown=20,
        log_config=None,
    )


if __name__ == "__main__":
    main()
