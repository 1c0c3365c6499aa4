"""Rate limits on logins and registrations, built on the `limits` library.

The counters live wherever RATE_LIMIT_STORAGE points: process memory by default, or
Redis (`redis://host:6379`) so that every worker shares one count. A login takes its
place in the count *before* its password is checked, so however many wrong passwords
arrive at once, no more than the limit are ever checked.
"""

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from storage import StorageUnavailable


def client_address(request: Request) -> str:
    """The connection's peer: uvicorn rewrites it from X-Forwarded-For only for FORWARDED_ALLOW_IPS."""
    return request.client.host if request.client else "unknown"


def too_many(wait: int, detail: str) -> HTTPException:
    """The 429 a limited request gets, saying how many seconds to wait."""
    return HTTPException(429, detail, {"Retry-After": str(wait)})


@contextmanager
def _counters_reachable() -> Iterator[None]:
    """An unreachable Redis is a 503 like any storage outage: logins are refused, not unthrottled."""
    try:
        yield
    except RedisError as error:
        raise StorageUnavailable() from error


class RateLimit:
    """One limit (such as `10/minute`) counted for each key, in windows that start at its first hit."""

    def __init__(self, limit: str, limiter: FixedWindowRateLimiter, name: str) -> None:
        self._limit: RateLimitItem = parse(limit)
        self._limiter = limiter
        self._name = name  # keeps each limit's counters apart in a shared store

    def take(self, *key: str) -> int | None:
        """Take one place for `key`: None when it was free, else the seconds until the window ends."""
        with _counters_reachable():
            if self._limiter.hit(self._limit, self._name, *key):
                return None
            reset_at, _ = self._limiter.get_window_stats(self._limit, self._name, *key)
        return max(1, math.ceil(reset_at - time.time()))

    def give_back(self, *key: str) -> None:
        """Return a place taken for an attempt that turned out not to count.

        `limits` has no refund call; a fixed window's count is a plain counter (in memory and
        in Redis alike), so a hit that costs -1 is exactly one place given back."""
        with _counters_reachable():
            self._limiter.hit(self._limit, self._name, *key, cost=-1)


class RateLimits:
    """Failed logins per (client, email) and per client, and registrations per client."""

    def __init__(self, login: str, login_per_client: str, register: str, storage_uri: str) -> None:
        limiter = FixedWindowRateLimiter(storage_from_string(storage_uri))
        self.login = RateLimit(login, limiter, "login")
        self.login_per_client = RateLimit(login_per_client, limiter, "login-client")
        self.register = RateLimit(register, limiter, "register")

    def take_login(self, client: str, email: str) -> int | None:
        """A place for one password check in both login limits, or the seconds to wait."""
        wait = self.login_per_client.take(client)
        if wait is not None:
            return wait
        wait = self.login.take(client, email)
        if wait is not None:
            self.login_per_client.give_back(client)
        return wait

    def login_succeeded(self, client: str, email: str) -> None:
        """The right password: successful logins do not count, so both places are given back."""
        self.login.give_back(client, email)
        self.login_per_client.give_back(client)
