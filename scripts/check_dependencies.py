"""Say which of PostgreSQL, Redis and RabbitMQ is unreachable, and how to start it."""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

from emporium_kit.settings import ServiceSettings
from users.settings import UsersSettings

HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
    "--appendonly no",
    "RabbitMQ": "rabbitmq-server -detached && rabbitmqctl await_startup",
}


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 3
        ):
            return True
    except OSError:
        return False


def main() -> int:
    shared = ServiceSettings()
    targets = {
        "PostgreSQL": (UsersSettings().database_url, 5432),
        "Redis": (shared.redis_url, 6379),
        "RabbitMQ": (shared.amqp_url, 5672),
    }
    missing = [name for name, (url, port) in targets.items() if not reachable(url, port)]
    for name in missing:
        url, _ = targets[name]
        print(
            f"error: {name} is not reachable at {urlsplit(url).netloc.split('@')[-1]}.",
            file=sys.stderr,
        )
        print(f"       Start it with: {HOW_TO_START[name]}", file=sys.stderr)
    if missing:
        return 1
    print("PostgreSQL, Redis and RabbitMQ are reachable.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
