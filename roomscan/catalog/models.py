"""The catalog's tables (SQLAlchemy 2 declarative). Alembic migrations in ``migrations/`` create them.

One schema serves SQLite (the default, zero set-up) and PostgreSQL. Photos are stored by content hash; every
detection records the model that made it, so running a new model adds rows instead of mixing results.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from roomscan.listing import AmenityStatus, Decision


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Role(StrEnum):
    """What an account may do: hosts change their own listings, admins change anything (and manage accounts)."""

    ADMIN = "admin"
    HOST = "host"


class User(Base):
    """An account: a host or an admin. It signs in with API keys (``api_keys``), never a stored secret of its own."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    keys: Mapped[list[ApiKey]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                              order_by="ApiKey.id")

    __table_args__ = (CheckConstraint("role IN ('admin', 'host')", name="ck_users_role"),)


class ApiKey(Base):
    """An API key of a user, stored only as its hash: ``prefix`` (shown in lists, logs and the audit log) picks the
    row, the hash of the whole key proves it (``roomscan.auth``)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    user: Mapped[User] = relationship(back_populates="keys")


class WebSession(Base):
    """A signed-in browser (``roomscan.api.sessions``): ``id`` is the SHA-256 of the token its cookie holds (the
    catalog never sees the token), made with the key named by ``key_prefix``; it ends at ``expires_at``, on
    sign-out, or when that key is revoked."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_prefix: Mapped[str] = mapped_column(String(32))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AuditEntry(Base):
    """One write: who (user and key prefix), what (action, target), when, from where, and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    user_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_prefix: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    remote: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)


MAX_BEDROOMS = 100
"""The most bedrooms a listing may declare (the ``listings.bedrooms`` CHECK, 0011)."""


class Listing(Base):
    """A rental listing: a title and the amenities its host claims, owned by the host who may change it."""

    __tablename__ = "listings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True, unique=True)  # 0005: imports
    # The host who may change it (admins may change any); a user who owns listings cannot be deleted.
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), nullable=True, index=True
    )
    # Unpublished listings are seen only by their owner and admins (0008): reads answer 404 to everyone else,
    # and their searchable roll-up rows are not written, so search never finds them.
    published: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The bedrooms its host declares (0011; None: not declared): the photo tour notes fewer bedroom photos.
    bedrooms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The stored roll-up (``listing_amenities``) may lag the listing's photos: set when a photo is attached while
    # its detection is still queued, cleared by every roll-up refresh; workers refresh stale listings.
    rollup_stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    claims: Mapped[list[ListingClaim]] = relationship(
        back_populates="listing", cascade="all, delete-orphan", order_by="ListingClaim.amenity"
    )
    photos: Mapped[list[ListingPhoto]] = relationship(
        back_populates="listing", cascade="all, delete-orphan", order_by="ListingPhoto.position"
    )
    decisions: Mapped[list[AmenityDecision]] = relationship(
        back_populates="listing", cascade="all, delete-orphan", order_by="AmenityDecision.amenity"
    )

    __table_args__ = (
        Index("ix_listings_rollup_stale", "rollup_stale"),
        CheckConstraint(f"bedrooms >= 0 AND bedrooms <= {MAX_BEDROOMS}", name="ck_listings_bedrooms"),
    )


class ListingClaim(Base):
    """An amenity the host says the listing has."""

    __tablename__ = "listing_claims"

    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True)
    amenity: Mapped[str] = mapped_column(String(64), primary_key=True)

    listing: Mapped[Listing] = relationship(back_populates="claims")


DECISIONS = tuple(Decision)


class AmenityDecision(Base):
    """The host's verdict on an amenity the model reported: stored beside the detections, never over them."""

    __tablename__ = "amenity_decisions"

    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True)
    amenity: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    listing: Mapped[Listing] = relationship(back_populates="decisions")

    __table_args__ = (CheckConstraint("decision IN ('confirmed', 'rejected')", name="ck_amenity_decisions_decision"),)


class Photo(Base):
    """A stored photo, identified by the SHA-256 of its bytes (the file lives in the photo store)."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ListingPhoto(Base):
    """A photo attached to a listing (the same photo may belong to several listings)."""

    __tablename__ = "listing_photos"

    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)

    listing: Mapped[Listing] = relationship(back_populates="photos")
    photo: Mapped[Photo] = relationship()

    __table_args__ = (Index("ix_listing_photos_photo", "photo_id"),)


class Model(Base):
    """A detector version (backend, weights and taxonomy) that produced detections."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    backend: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(300))
    version: Mapped[str] = mapped_column(String(80))
    taxonomy: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Detection(Base):
    """One box on one photo, by one model. Boxes are pixels of the upright (EXIF-rotated) image."""

    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    amenity: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_detections_photo_model", "photo_id", "model_id"),)


class JobState(StrEnum):
    """Where a photo's detection by one model stands (``catalog.jobs`` moves jobs between them)."""

    PENDING = "pending"
    """Waiting for a worker (new, retried, or given back)."""
    RUNNING = "running"
    """Claimed by the worker named in ``leased_by`` until ``leased_until``."""
    DONE = "done"
    """Its detections are stored."""
    FAILED = "failed"
    """Gave up after ``error``; ``roomscan worker --retry-failed`` queues it again."""


JOB_STATES = tuple(JobState)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class PhotoJob(Base):
    """Persisted detection work: one photo through one model. ``done`` means its detections are stored.

    A worker claims a job by moving it to ``running`` with a lease; a job whose lease ran out (its worker died)
    is claimed again, so an accepted photo is never lost. ``leased_by`` names the process holding the lease
    (``host/pid-namespace/pid/boot``), so a worker on the same host can tell at once that it is gone.
    """

    __tablename__ = "photo_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default=JobState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("photo_id", "model_id", name="uq_photo_jobs_photo_model"),
        CheckConstraint(_one_of("state", JOB_STATES), name="ck_photo_jobs_state"),
        Index("ix_photo_jobs_state", "state", "id"),
    )


AMENITY_STATUSES = tuple(AmenityStatus)


class ListingAmenity(Base):
    """A listing's roll-up for one amenity under one model: what search reads.

    ``seen`` is true when a photo shows the amenity at or above its threshold (and the host has not rejected
    it); ``score`` is the best score (0 when no photo shows it); ``status`` is ``confirmed`` (claimed and seen,
    or confirmed by the host), ``unverified`` (claimed, not seen), ``discovered`` (seen, not claimed) or
    ``rejected`` (the model reported it, the host says it is not there).
    """

    __tablename__ = "listing_amenities"

    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True)
    amenity: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), nullable=True)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    photo_count: Mapped[int] = mapped_column(Integer, default=0)
    claimed: Mapped[bool] = mapped_column(Boolean, default=False)
    seen: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        # Search walks one amenity's listings in id order and probes the others by primary key.
        Index("ix_listing_amenities_search", "amenity", "listing_id", "score", "status"),
        # What a default search (seen, any score) reads: half the width, no status to test (migration 0004).
        Index(
            "ix_listing_amenities_seen",
            "amenity",
            "listing_id",
            sqlite_where=text(_one_of("status", (AmenityStatus.CONFIRMED, AmenityStatus.DISCOVERED))),
            postgresql_where=text(_one_of("status", (AmenityStatus.CONFIRMED, AmenityStatus.DISCOVERED))),
        ),
        CheckConstraint(_one_of("status", AMENITY_STATUSES), name="ck_listing_amenities_status"),
    )


class PhotoInsight(Base):
    """What a photo's pixels say, whatever the model (0009): its quality (``insights.quality.PhotoQuality``) and
    its five perceptual hashes (``insights.phash.photo_hashes``), stored signed (``hash - 2**64`` above
    ``2**63 - 1``) since databases have no unsigned 64-bit integer. ``version`` is the analysis that wrote the
    row (``catalog.insights.ANALYSIS_VERSION``): ``roomscan photos analyse`` redoes older ones."""

    __tablename__ = "photo_insights"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    quality: Mapped[dict] = mapped_column(JSON)
    quality_score: Mapped[float] = mapped_column(Float)
    hash0: Mapped[int] = mapped_column(BigInteger)
    hash1: Mapped[int] = mapped_column(BigInteger)
    hash2: Mapped[int] = mapped_column(BigInteger)
    hash3: Mapped[int] = mapped_column(BigInteger)
    hash4: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # The duplicate index catches up on the rows written since it last looked.
    __table_args__ = (Index("ix_photo_insights_computed_at", "computed_at"),)


class PhotoRoom(Base):
    """A photo's room type under one model (0009): the best room, its probability and every room's score
    (``insights.rooms.RoomScores.to_dict()``)."""

    __tablename__ = "photo_rooms"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    room: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_photo_rooms_room", "model_id", "room", "photo_id"),)


class ListingRoom(Base):
    """A listing's roll-up of the room types its photos show, under one model: what search by room reads (0009).

    Kept with ``listing_amenities`` by the same refresh, under the same rule: an unpublished listing has none.
    ``photo_count``: its photos whose best room this is; ``score``: the best of their probabilities.
    """

    __tablename__ = "listing_rooms"

    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True)
    room: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), nullable=True)
    photo_count: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)

    # Search walks one room's listings in id order, or probes (room, listing_id) for a listing.
    __table_args__ = (Index("ix_listing_rooms_search", "room", "listing_id"),)


class PhotoMark(Base):
    """A photo's radioactive-data marked copy under one marking key (0010; ``catalog.marks``).

    The original stays the photo's bytes (detection, duplicates and training read it); the marked copy is stored
    in the photo store beside it, content-addressed, and served on public image URLs to everyone but the photo's
    owners and admins. ``key_fingerprint`` names the key (``marks.key_fingerprint``): a row of another key is stale
    and ``roomscan photos mark`` redoes it. A photo that cannot be marked (a format other than JPEG or PNG, or one
    whose re-encoding alone breaks the bounds) keeps a row with no ``marked_sha256`` and the reason in ``note``.
    """

    __tablename__ = "photo_marks"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    carrier: Mapped[str] = mapped_column(String(200))
    marked_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    psnr: Mapped[float | None] = mapped_column(Float, nullable=True)
    linf: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # The photo store's sweep keeps files a mark names.
    __table_args__ = (Index("ix_photo_marks_marked_sha256", "marked_sha256"),)
