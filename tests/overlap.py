"""Proof for a concurrency test that its requests were really in flight at the same time."""

import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from storage import Storage, get_db


class Overlap:
    """Counts requests inside the app at once, through a `get_db` override that wraps the storage."""

    def __init__(self, app: FastAPI, storage: Storage) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self.peak = 0

        async def tracked_db() -> AsyncIterator[Storage]:
            with self._lock:
                self._inside += 1
                self.peak = max(self.peak, self._inside)
            try:
                yield storage
            finally:
                with self._lock:
                    self._inside -= 1

        app.dependency_overrides[get_db] = tracked_db
