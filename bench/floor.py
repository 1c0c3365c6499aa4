"""The floor under the targets: FastAPI and the project's storage, and nothing else.

`uvicorn bench.floor:app` answers three of the benchmark's requests (GET one task, the
filtered page, POST) over the same `Storage` backend as the project (DATABASE_URL), with no
auth, middleware, headers, query parsing or error handling. `make bench` measures it beside
the project, so the results show how much of each figure FastAPI and storage alone set.
"""

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bench.dataset import USER_ID
from bench.server import seed_memory
from main import open_storage
from models import Task, TaskCreate, TaskPage, TaskQuery
from settings import Settings
from storage import Storage, TaskListing

FILTERED = TaskListing(TaskQuery.model_validate({"status": ["pending"], "priority": 3, "limit": 20}))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.db = db = open_storage(Settings())
    if db.kind == "memory":
        await seed_memory(db, int(os.environ.get("BENCH_SEED_TASKS", "0")))
    gc.freeze()  # as main.py's lifespan does, so both pay the same for garbage collection
    yield
    await db.close()


app = FastAPI(lifespan=lifespan)


def storage() -> Storage:
    db: Storage = app.state.db
    return db


@app.get("/health")
async def health() -> dict[str, str]:
    """The benchmark's readiness check, as on the project."""
    return {"status": "ok"}


@app.get("/tasks/{task_id}")
async def read_task(task_id: int) -> Task:
    return await storage().get_task(task_id, USER_ID)


@app.get("/tasks")
async def list_tasks() -> TaskPage:
    """Always the filtered page (`status=pending&priority=3&limit=20`), as the scenario asks."""
    found, total = await storage().list_tasks(USER_ID, FILTERED)
    limit = FILTERED.query.limit
    return TaskPage(items=found[:limit], total=total, limit=limit, offset=0, next_cursor=None)


@app.post("/tasks", status_code=201)
async def create_task(data: TaskCreate) -> Task:
    return await storage().create_task(USER_ID, data)
