"""Passwords (Argon2id via pwdlib), access tokens (JWT via PyJWT), and who is calling.

Hashing is slow on purpose, so it always runs in a worker thread, never on the event loop.
"""

import re
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from secrets import compare_digest
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from starlette.concurrency import run_in_threadpool

from models import Token, User
from settings import AppSettings, Settings
from storage import MAX_ID, Db, Storage

ALGORITHM = "HS256"  # pinned: the token's own header never chooses the algorithm
USER_ID = re.compile(r"[1-9][0-9]{0,9}")
password_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the email is unknown, so both failures cost one Argon2 check.
UNKNOWN_USER_HASH = password_hasher.hash("no-such-user-timing-equaliser")

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="Admin routes, when ADMIN_API_KEY is set")


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def hash_password(password: str) -> str:
    return await run_in_threadpool(password_hasher.hash, password)


async def authenticate(db: Storage, email: str, password: str) -> User | None:
    """The user these credentials belong to, or None; as slow for an unknown email as a wrong password."""
    credentials = await db.get_credentials(email.strip().lower())
    stored_hash = credentials.password_hash if credentials else UNKNOWN_USER_HASH
    valid = await run_in_threadpool(password_hasher.verify, password, stored_hash)
    return credentials.user if credentials and valid else None


def create_access_token(user_id: int, settings: Settings) -> Token:
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    issued = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": issued, "exp": issued + lifetime}
    token = jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)
    return Token(access_token=token, expires_in=int(lifetime.total_seconds()))


@lru_cache(maxsize=4096)
def _verified_token(token: str, secret_key: str) -> tuple[int, float]:
    """(user id, expiry) of a token PyJWT has fully verified; any bad token raises (never cached).

    A client sends the same token with every request, and checking its signature costs more
    than the rest of a small GET, so a verified token is remembered; the caller still checks
    the expiry on every use.
    """
    try:
        claims = jwt.decode(token, secret_key, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "iat"]})
    except jwt.InvalidTokenError as error:
        raise unauthorized("The access token is invalid or has expired") from error
    # Only a canonical id that fits every backend's id column: SQLite and PostgreSQL fail on larger ones.
    if not USER_ID.fullmatch(claims["sub"]) or int(claims["sub"]) > MAX_ID:
        raise unauthorized("The access token is invalid or has expired")
    return int(claims["sub"]), float(claims["exp"])


def user_id_from_token(token: str, settings: Settings) -> int:
    """The token's subject; any expired, forged, unsigned or malformed token is a 401."""
    user_id, expires_at = _verified_token(token, settings.secret_key)
    if expires_at <= time.time():  # the same rule PyJWT applies (no leeway)
        raise unauthorized("The access token is invalid or has expired")
    return user_id


async def get_current_user(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)], db: Db) -> User:
    """The caller, from the bearer token. Settings come straight from the app (not a dependency):
    this runs on every request, and each dependency FastAPI resolves costs about 9 µs."""
    if token is None:
        raise unauthorized("Not authenticated: send 'Authorization: Bearer <token>'")
    user = await db.get_user(user_id_from_token(token, request.app.state.settings))
    if user is None:
        raise unauthorized("The access token is invalid or has expired")
    request.state.user_id = user.id  # for the access log
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def require_admin(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
    db: Db,
    settings: AppSettings,
) -> None:
    """Admins pass with an admin's token, or with `X-API-Key` when ADMIN_API_KEY is configured."""
    if api_key is not None and settings.admin_api_key:
        if not compare_digest(api_key.encode(), settings.admin_api_key.encode()):
            raise unauthorized("The X-API-Key is not valid")
        return
    user = await get_current_user(request, token, db)
    if not user.is_admin:
        raise HTTPException(403, "This route is for administrators only")


def owner_scope(user: User) -> int | None:
    """Whose tasks this user may touch: their own, or everyone's (None) for an admin."""
    return None if user.is_admin else user.id
