"""Failed-login throttling per (client address, email), built on the `limits` library.

The counters live wherever RATE_LIMIT_STORAGE points: process memory by default, or
Redis (`redis://host:6379`) so that every worker shares one count.
"""

import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class LoginThrottle:
    """Counts failed logins; once a pair reaches the limit, every attempt waits for the window."""

    def __init__(self, limit: str, storage_uri: str) -> None:
        self._limit = parse(limit)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def retry_after(self, client: str, email: str) -> int | None:
        """Seconds until this pair may try again, or None when it may try now."""
        if self._limiter.test(self._limit, client, email):
            return None
        reset_at, _ = self._limiter.get_window_stats(self._limit, client, email)
        return max(1, math.ceil(reset_at - time.time()))

    def record_failure(self, client: str, email: str) -> None:
        self._limiter.hit(self._limit, client, email)
