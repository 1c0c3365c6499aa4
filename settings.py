"""Configuration from the environment (or `.env`), with the contract's variable names.

One `Settings` object is built at startup; production refuses unsafe secrets so a
forgotten `SECRET_KEY` can never sign real tokens.
"""

import warnings
from typing import Annotated, Literal

from fastapi import Depends, Request
from limits import parse
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "dev-only-secret-key-change-me-in-production"  # noqa: S105 - refused in production
MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    """Every knob of the service; names match the README's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "memory"
    app_env: Literal["development", "production"] = "development"
    secret_key: str = DEV_SECRET_KEY
    access_token_expire_minutes: int = Field(default=30, gt=0)
    admin_email: str | None = None
    admin_password: str | None = None
    admin_api_key: str | None = None
    demo_data: bool | None = None  # None: on in development, off in production
    cors_origins: str = "http://localhost:3000,http://localhost:5173"
    login_rate_limit: str = "10/minute"
    login_client_rate_limit: str = "50/minute"
    register_rate_limit: str = "30/minute"
    rate_limit_storage: str = "memory://"
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    idempotency_ttl_hours: int = Field(default=24, ge=24)
    storage_timeout_seconds: float = Field(default=5.0, gt=0)

    @field_validator("login_rate_limit", "login_client_rate_limit", "register_rate_limit")
    @classmethod
    def _rate_limit(cls, limit: str) -> str:
        parse(limit)  # the `limits` syntax, e.g. "10/minute"; a typo stops the start, never the limit
        return limit

    @field_validator("database_url")
    @classmethod
    def _known_storage(cls, url: str) -> str:
        if url != "memory" and not url.startswith(("sqlite:///", "postgresql")):
            raise ValueError("DATABASE_URL must be 'memory', 'sqlite:///…' or 'postgresql+psycopg://…'")
        return url

    @model_validator(mode="after")
    def _check_secret_key(self) -> "Settings":
        """Refuse a guessable signing key in production; only warn while developing."""
        unsafe = self.secret_key == DEV_SECRET_KEY or len(self.secret_key.encode()) < MIN_SECRET_BYTES
        if unsafe and self.app_env == "production":
            raise ValueError(
                f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_BYTES} bytes "
                "in production (for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.secret_key == DEV_SECRET_KEY:
            warnings.warn("SECRET_KEY is the development default; never use it in production", stacklevel=2)
        return self

    @property
    def load_demo_data(self) -> bool:
        return self.demo_data if self.demo_data is not None else self.app_env == "development"

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def storage_kind(self) -> Literal["memory", "sqlite", "postgresql"]:
        if self.database_url == "memory":
            return "memory"
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"


async def get_settings(request: Request) -> Settings:
    """The settings the running app was built with (async: no thread-pool hop per request)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]
