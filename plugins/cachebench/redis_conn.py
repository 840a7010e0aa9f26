"""The one way cachebench opens a connection to a Redis or Valkey node.

Every caller (the server manager's readiness and SHUTDOWN, the metrics agent, the
prefill, the provenance's INFO) loops or fails on its own terms, so a connection
never retries behind its back: one attempt, bounded by `timeout` seconds.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def connect(
    host: str,
    port: int,
    password: str | None,
    timeout: float = 2.0,
    decode_responses: bool = True,
) -> redis.Redis:
    """A single-connection client of host:port (AUTH with password unless None/empty)."""
    return redis.Redis(
        host=host,
        port=port,
        password=password or None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=decode_responses,
        single_connection_client=True,
        retry=Retry(NoBackoff(), 0),
    )
