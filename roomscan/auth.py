"""Accounts, API keys and who may change what: the one place roomscan decides it (the API, the page and the CLI
all call :func:`authenticate` and :func:`require_change`).

- An account (``users``) is an ``admin`` (changes anything, manages accounts, reads the audit log) or a ``host``
  (creates listings it owns and changes only those). Reads are public, except of an unpublished listing: only
  its owner and admins see it (and its photos); everyone else gets "does not exist", as for a listing that does
  not, and a write to it from another host is refused the same way (404, not 403), so nothing leaks.
- An API key is ``rsk_`` + 43 random URL-safe characters (256 bits), shown once when created. The catalog keeps
  only its ``prefix`` (the first 12 characters, to find the row and to name the key in lists and the audit log) and
  an HMAC-SHA-256 of the whole key; a presented key is checked in constant time. A random 256-bit secret needs no
  slow password hash: nothing can be guessed from its hash.
- ``ROOMSCAN_API_KEY`` is the bootstrap key: it signs in as the ``admin`` account migration 0006 creates, so a new
  install works with one environment variable and the first real keys are made with it.

Example:
    >>> user = create_user(session, "alice", Role.HOST)          # doctest: +SKIP
    >>> key = create_key(session, user)                            # shown once; only its hash is stored
    >>> principal = authenticate(session, key)                     # doctest: +SKIP
    >>> require_change(principal, listing)                         # PermissionDeniedError unless hers
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from roomscan.catalog import store
from roomscan.catalog.models import ApiKey, Listing, ListingPhoto, Role, User
from roomscan.errors import AuthenticationError, NotFoundError, PermissionDeniedError, RoomscanError

__all__ = [
    "BOOTSTRAP_ADMIN",
    "KEY_PREFIX",
    "Principal",
    "Role",
    "authenticate",
    "can_see",
    "check_photo_quota",
    "create_key",
    "create_user",
    "get_user",
    "hash_key",
    "key_prefix",
    "list_users",
    "photo_is_public",
    "require_admin",
    "require_change",
    "require_see",
    "require_see_photo",
    "revoke_key",
    "visible_listings",
]

KEY_PREFIX = "rsk_"
BOOTSTRAP_ADMIN = store.BOOTSTRAP_OWNER
"""The account ``ROOMSCAN_API_KEY`` signs in as (created by migration 0006; owns listings made before accounts)."""
_PREFIX_LENGTH = 12
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Domain separation for the key hash; the key itself is the secret (256 random bits).
_HASH_KEY = b"roomscan api key v1"
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    user_id: int
    name: str
    role: Role
    key_prefix: str | None
    """The key's prefix (``bootstrap`` for ``ROOMSCAN_API_KEY``): names the key in the audit log."""

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def hash_key(key: str) -> str:
    """The stored form of an API key: HMAC-SHA-256, hex."""
    return hmac.new(_HASH_KEY, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def key_prefix(key: str) -> str:
    """The part of a key that names it (safe to show and log)."""
    return key[:_PREFIX_LENGTH]


# -- accounts ------------------------------------------------------------------------------------------------------
def create_user(session: Session, name: str, role: Role | str) -> User:
    """A new account (not committed).

    Raises:
        RoomscanError: a bad name or role, or a name already taken.
    """
    name = name.strip().lower()
    if not _NAME_RE.match(name):
        raise RoomscanError(f"user name {name!r}: use 1-64 lower-case letters, digits, '.', '_' or '-'")
    try:
        role = Role(role)
    except ValueError:
        raise RoomscanError(f"role must be one of {', '.join(Role)}, got {role!r}") from None
    user = User(name=name, role=role)
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise RoomscanError(f"user {name!r} already exists") from None
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name.strip().lower()))
    if user is None:
        raise NotFoundError(f"no user named {name!r} (`roomscan users list` shows them)")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def create_key(session: Session, user: User, label: str | None = None) -> str:
    """A new API key for ``user``: returned once, stored only as its hash (not committed)."""
    for _ in range(5):  # a prefix collision among 2**48 is all but impossible; try again if it happens
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        prefix = key_prefix(key)
        try:
            with session.begin_nested():
                session.add(ApiKey(user_id=user.id, prefix=prefix, key_hash=hash_key(key), label=label))
        except IntegrityError:
            continue
        return key
    raise RoomscanError("could not make a unique key; try again")  # pragma: no cover


def revoke_key(session: Session, prefix: str) -> ApiKey:
    """Revoke a key by its prefix (``roomscan users list --keys`` shows them); revoking twice is harmless.

    Raises:
        NotFoundError: no key has this prefix.
    """
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix.strip()))
    if key is None:
        raise NotFoundError(f"no API key starts {prefix!r} (keys are named by their first {_PREFIX_LENGTH} characters)")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
    session.flush()
    return key


# -- who is asking -------------------------------------------------------------------------------------------------
def authenticate(session: Session, key: str | None, *, bootstrap_key: str | None = None) -> Principal:
    """The principal ``key`` signs in as.

    Raises:
        AuthenticationError: no key, an unknown key or a revoked one (the message says which and what to do).
    """
    if not key:
        raise AuthenticationError("missing API key: send it in the X-API-Key header")
    if bootstrap_key and hmac.compare_digest(key.encode("utf-8", "surrogatepass"), bootstrap_key.encode()):
        admin = session.scalar(select(User).where(User.name == BOOTSTRAP_ADMIN))
        if admin is None:
            raise AuthenticationError(f"the bootstrap account {BOOTSTRAP_ADMIN!r} is missing; recreate it with "
                                      f"`roomscan users add {BOOTSTRAP_ADMIN} --role admin`")
        return Principal(admin.id, admin.name, Role(admin.role), "bootstrap")
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == key_prefix(key)))
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        raise AuthenticationError("unknown API key")
    if row.revoked_at is not None:
        raise AuthenticationError(f"API key {row.prefix}… was revoked; ask an admin for a new one")
    now = datetime.now(UTC)
    last = row.last_used_at
    if last is None or now - (last if last.tzinfo else last.replace(tzinfo=UTC)) > _TOUCH_EVERY:
        _touch(session, row.id, now)
    user = row.user
    return Principal(user.id, user.name, Role(user.role), row.prefix)


def _touch(session: Session, key_id: int, now: datetime) -> None:
    """Record a key's use, at most once a minute (a write per request would serialise SQLite's readers)."""
    from sqlalchemy import update

    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now)
                    .execution_options(synchronize_session=False))
    session.commit()


# -- who may change what -------------------------------------------------------------------------------------------
def can_change(principal: Principal, listing: Listing) -> bool:
    """Admins change any listing; a host only its own."""
    return principal.is_admin or listing.owner_id == principal.user_id


def can_see(principal: Principal | None, listing: Listing) -> bool:
    """Everyone sees a published listing; an unpublished one only its owner and admins (``None``: anonymous)."""
    return listing.published or (principal is not None and can_change(principal, listing))


def require_see(principal: Principal | None, listing: Listing) -> None:
    """Raise ``NotFoundError`` (worded as for a missing listing) unless ``principal`` may see ``listing``."""
    if not can_see(principal, listing):
        raise NotFoundError(store.missing_listing(listing.id))


def visible_listings(principal: Principal | None) -> ColumnElement[bool] | None:
    """A filter on ``listings`` keeping what ``principal`` may see (``None``: no filter, for admins)."""
    if principal is not None and principal.is_admin:
        return None
    if principal is None:
        return Listing.published.is_(True)
    return or_(Listing.published.is_(True), Listing.owner_id == principal.user_id)


def require_see_photo(session: Session, principal: Principal | None, photo_id: int) -> bool:
    """Raise ``NotFoundError`` (worded as for a missing photo) when every listing showing the photo is hidden
    from ``principal``; a photo on at least one listing it may see is visible. Returns whether the photo is public
    (as :func:`photo_is_public`: caches may keep it). One query.

    Example:
        >>> cache = "public" if require_see_photo(session, viewer, photo_id) else "private"  # doctest: +SKIP
    """
    visible, public = _photo_reach(session, principal, photo_id)
    if not visible:
        raise NotFoundError(store.missing_photo(photo_id))
    return public


def photo_is_public(session: Session, photo_id: int) -> bool:
    """Whether anyone may see the photo (it is on a published listing, or on none): caches may keep it."""
    return _photo_reach(session, None, photo_id)[1]


def _photo_reach(session: Session, principal: Principal | None, photo_id: int) -> tuple[bool, bool]:
    """``(visible to principal, public)`` in one query. A photo on no listing is both; an admin sees every
    photo."""
    on = (select(ListingPhoto.listing_id).join(Listing, Listing.id == ListingPhoto.listing_id)
          .where(ListingPhoto.photo_id == photo_id))
    seen = visible_listings(principal)
    on_any, on_published, on_seen = session.execute(select(
        select(ListingPhoto.listing_id).where(ListingPhoto.photo_id == photo_id).exists(),
        on.where(Listing.published.is_(True)).exists(),
        on.where(seen).exists() if seen is not None else true(),
    )).one()
    public = not on_any or bool(on_published)
    return public or bool(on_seen), public


def require_change(principal: Principal, listing: Listing) -> None:
    """Raise ``PermissionDeniedError`` unless ``principal`` may change ``listing`` (its title, claims, photos,
    decisions, or delete it); ``NotFoundError`` instead when the listing is also hidden from them (unpublished),
    so a refusal does not reveal that it exists."""
    require_see(principal, listing)
    if not can_change(principal, listing):
        raise PermissionDeniedError(f"listing {listing.id} belongs to another host: {principal.name} may change only "
                                    "their own listings")


def require_admin(principal: Principal, what: str = "this") -> None:
    if not principal.is_admin:
        raise PermissionDeniedError(f"only an admin may do {what}; {principal.name} is a {principal.role}")


def check_photo_quota(session: Session, listing: Listing, adding: int, quota: int) -> None:
    """Raise ``PermissionDeniedError`` if attaching ``adding`` more photos to ``listing`` would give its host more
    than ``quota`` photos across their listings (``Settings.host_photo_quota``; each attachment counts, so a photo
    on two listings counts twice). Listings an admin owns have no quota."""
    from sqlalchemy import func

    owner = session.get(User, listing.owner_id) if listing.owner_id is not None else None
    if owner is None or owner.role == Role.ADMIN:
        return
    count = session.scalar(
        select(func.count()).select_from(ListingPhoto).join(Listing, Listing.id == ListingPhoto.listing_id)
        .where(Listing.owner_id == owner.id)
    ) or 0
    if count + adding > quota:
        raise PermissionDeniedError(
            f"photo quota: {owner.name}'s listings have {count} photos, {adding} more would pass the quota of "
            f"{quota} per host (ROOMSCAN_HOST_PHOTO_QUOTA); remove photos or ask an admin to raise it"
        )
