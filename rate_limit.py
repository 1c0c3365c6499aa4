"""Failed-login throttling per (client address, email), built on the `limits` library.

The counters live wherever RATE_LIMIT_STORAGE points: process memory by default, or
Redis (`redis://host:6379`) so that every worker shares one count.
"""

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from storage import StorageUnavailable


@contextmanager
def _counters_reachable() -> Iterator[None]:
    """An unreachable Redis is a 503 like any storage outage: logins are refused, not unthrottled."""
    try:
        yield
    except RedisError as error:
        raise StorageUnavailable() from error


class LoginThrottle:
    """Counts failed logins; once a pair reaches the limit, every attempt waits for the window."""

    def __init__(self, limit: str, storage_uri: str) -> None:
        self._limit = parse(limit)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def retry_after(self, client: str, email: str) -> int | None:
        """Seconds until this pair may try again, or None when it may try now."""
        with _counters_reachable():
            if self._limiter.test(self._limit, client, email):
                return None
            reset_at, _ = self._limiter.get_window_stats(self._limit, client, email)
        return max(1, math.ceil(reset_at - time.time()))

    def record_failure(self, client: str, email: str) -> None:
        with _counters_reachable():
            self._limiter.hit(self._limit, client, email)
