"""Passwords (Argon2id via pwdlib), access tokens (JWT via PyJWT), and who is calling.

Each Argon2 computation takes about 64 MiB and a core's worth of time on purpose, so only
one per core runs at a time, on threads of their own; the others wait their turn, and a
request that cannot get one within the storage timeout gets a 503.
"""

import asyncio
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from secrets import compare_digest
from typing import Annotated, Any, TypeVar

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from errors import seconds_left
from models import Token, User
from settings import AppSettings, Settings
from storage import MAX_ID, Db, Storage, UserCredentials

T = TypeVar("T")

ALGORITHM = "HS256"  # pinned: the token's own header never chooses the algorithm
REQUIRED_CLAIMS = ["sub", "key", "iat", "exp"]
INVALID_TOKEN = "The access token is invalid or has expired"  # noqa: S105 - a message, not a secret
USER_ID = re.compile(r"[1-9][0-9]{0,9}")
password_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the email is unknown, so both failures cost one Argon2 check.
UNKNOWN_USER_HASH = password_hasher.hash("no-such-user-timing-equaliser")
hashing_threads = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="argon2")

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="Admin routes, when ADMIN_API_KEY is set")


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def _on_hashing_thread(work: Callable[[], T], wait_seconds: float) -> T:
    """Run one Argon2 computation when a hashing thread is free; give up (503) when the
    request's `wait_seconds` (counted from its arrival) run out first. A turn still queued is
    then cancelled, never run."""
    future = asyncio.get_running_loop().run_in_executor(hashing_threads, work)
    try:
        return await asyncio.wait_for(future, max(0.0, seconds_left(wait_seconds)))
    except TimeoutError:
        raise HTTPException(503, "The server is busy checking passwords; retry shortly", {"Retry-After": "1"}) from None


async def hash_password(password: str, wait_seconds: float) -> str:
    return await _on_hashing_thread(lambda: password_hasher.hash(password), wait_seconds)


async def verify_password(password: str, password_hash: str, wait_seconds: float) -> bool:
    return await _on_hashing_thread(lambda: password_hasher.verify(password, password_hash), wait_seconds)


async def authenticate(db: Storage, email: str, password: str, wait_seconds: float) -> UserCredentials | None:
    """The account these credentials open, or None; as slow for an unknown email as a wrong password."""
    credentials = await db.get_credentials(email)
    stored_hash = credentials.password_hash if credentials else UNKNOWN_USER_HASH
    valid = await verify_password(password, stored_hash, wait_seconds)
    return credentials if credentials and valid else None


def create_access_token(credentials: UserCredentials, settings: Settings) -> Token:
    """A token for this account as it is now: its `key` claim stops matching when the password changes."""
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    issued = datetime.now(UTC)
    claims = {"sub": str(credentials.user.id), "key": credentials.token_key, "iat": issued, "exp": issued + lifetime}
    token = jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)
    return Token(access_token=token, expires_in=int(lifetime.total_seconds()))


def _plausible(claims: dict[str, Any], settings: Settings) -> bool:
    """PyJWT checked the signature, that `exp` is ahead and `iat` behind; this refuses what we
    never issue: an id no backend can hold, or a lifetime longer than the configured one."""
    subject, key = claims["sub"], claims["key"]
    if not (isinstance(key, str) and USER_ID.fullmatch(subject) and int(subject) <= MAX_ID):
        return False
    lifetime = int(claims["exp"]) - int(claims["iat"])
    return 0 < lifetime <= settings.access_token_expire_minutes * 60


def read_token(token: str, settings: Settings) -> tuple[int, str]:
    """The (user id, token key) a token names; any expired, forged, unsigned or malformed token is a 401."""
    try:
        claims = jwt.decode(token, settings.secret_key, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS})
    except jwt.InvalidTokenError as error:
        raise unauthorized(INVALID_TOKEN) from error
    if not _plausible(claims, settings):
        raise unauthorized(INVALID_TOKEN)
    return int(claims["sub"]), claims["key"]


async def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)], db: Db, settings: AppSettings
) -> User:
    """The caller, read from storage on every request: a deleted account or a changed password
    locks its tokens out at once."""
    if token is None:
        raise unauthorized("Not authenticated: send 'Authorization: Bearer <token>'")
    user = await db.get_user(*read_token(token, settings))
    if user is None:
        raise unauthorized(INVALID_TOKEN)
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
    user = await get_current_user(request, token, db, settings)
    if not user.is_admin:
        raise HTTPException(403, "This route is for administrators only")


def owner_scope(user: User) -> int | None:
    """Whose tasks this user may touch: their own, or everyone's (None) for an admin."""
    return None if user.is_admin else user.id
