# The Tasks API image. It runs exactly what tests/test_workers.py starts: two uvicorn workers.
# Build and run with docker compose (API + PostgreSQL + a one-shot migration); see the README.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Trust no proxy's X-Forwarded-For (uvicorn would trust 127.0.0.1): behind one, pass
# `-e FORWARDED_ALLOW_IPS=<its address>` so the rate limits see the real client.
ENV FORWARDED_ALLOW_IPS=""
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --system --no-create-home app
USER app

EXPOSE 8000
CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--workers", "2", "--loop", "asyncio", "--timeout-graceful-shutdown", "5"]
