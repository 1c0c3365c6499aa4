"""The cheapest FastAPI app worth comparing against: a stored dict by id, typed, no auth."""

from fastapi import FastAPI
from pydantic import BaseModel


class Item(BaseModel):
    id: int
    title: str
    status: str
    priority: int
    tags: list[str]


ITEMS = {
    i: {"id": i, "title": f"Task {i}", "status": "pending", "priority": 3, "tags": ["home"]} for i in range(10_001)
}
app = FastAPI()


@app.get("/items/{item_id}", response_model=Item)
async def read_item(item_id: int) -> dict[str, object]:
    return ITEMS[item_id]
