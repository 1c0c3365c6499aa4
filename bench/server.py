"""The project's app as the benchmark serves it: `uvicorn bench.server:app`.

Built with `main.create_app` and every middleware in place; only two things differ:
the JSON access log is silenced (writing it would measure the terminal), and with the
memory backend the store is seeded through the `Storage` interface in a lifespan
wrapper before the first request, since that store lives inside this process.
Configured by the environment: the app's own settings plus BENCH_SEED_TASKS.
"""

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auth import hash_password
from bench.dataset import EMAIL, PASSWORD, task_fields
from main import create_app
from models import TaskCreate
from settings import Settings
from storage import Storage


async def seed_memory(db: Storage, count: int) -> None:
    """One user owning `count` tasks, created exactly as POST /tasks would create them."""
    user = await db.create_user(EMAIL, await hash_password(PASSWORD, wait_seconds=5))
    for i in range(1, count + 1):
        await db.create_task(user.id, TaskCreate.model_validate(task_fields(i)))


def build_app() -> FastAPI:
    logging.getLogger("tasks.access").setLevel(logging.WARNING)
    app = create_app(Settings())
    seed_count = int(os.environ.get("BENCH_SEED_TASKS", "0"))
    app_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def seeded_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with app_lifespan(app):
            if seed_count:
                await seed_memory(app.state.storage, seed_count)
            yield

    app.router.lifespan_context = seeded_lifespan
    return app


app = build_app()
