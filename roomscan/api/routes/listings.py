"""``/api/v1/listings``: create and read listings, read their amenities and processing state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from roomscan.api.deps import PrincipalDep, ServicesDep, SessionDep, ViewerDep, editable_listing, visible_listing
from roomscan.api.schemas import (
    CREATE,
    DELETE,
    LISTINGS,
    MAX_ID,
    READ,
    WRITE,
    AmenityOut,
    CatalogId,
    DecisionIn,
    EvidenceOut,
    ListingAmenitiesOut,
    ListingCreate,
    ListingOut,
    ListingPage,
    ListingUpdate,
    ProcessingOut,
    Text,
)
from roomscan.auth import visible_listings
from roomscan.catalog import store
from roomscan.catalog.models import Listing
from roomscan.errors import TaxonomyError
from roomscan.services import Services
from roomscan.taxonomy import Taxonomy

router = APIRouter(prefix="/listings", tags=["listings"])


def listing_out(listing: Listing) -> ListingOut:
    return ListingOut(
        id=listing.id,
        title=listing.title,
        claimed_amenities=[c.amenity for c in listing.claims],
        photo_ids=[lp.photo_id for lp in listing.photos],
        created_at=listing.created_at.isoformat(),
        published=listing.published,
        bedrooms=listing.bedrooms,
    )


def resolve_amenities(taxonomy: Taxonomy, names: list[str]) -> list[str]:
    """Slugs for amenity names/slugs; 422 naming the unknown one."""
    try:
        return sorted({taxonomy.resolve(n).slug for n in names})
    except TaxonomyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ListingOut,
    responses=CREATE,
)
def create_listing(
    body: ListingCreate, principal: PrincipalDep, services: ServicesDep, session: SessionDep
) -> ListingOut:
    """Create a listing with the amenities its host claims (they start as ``unverified``); the key's account owns
    it."""
    try:
        listing = store.create_listing(
            session, body.title, body.claimed_amenities, taxonomy=services.taxonomy, model_id=services.model_id,
            owner_id=principal.user_id, published=body.published, bedrooms=body.bedrooms,
        )
    except (ValueError, TaxonomyError) as exc:  # blank title, bedrooms out of range, unknown amenity
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    session.commit()
    return listing_out(listing)


@router.get("", response_model=ListingPage, responses=LISTINGS)
def list_listings(
    session: SessionDep,
    viewer: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> ListingPage:
    """Newest listings first: the published ones, and with a key also the caller's unpublished ones (all, for an
    admin)."""
    listings = store.list_listings(session, limit=limit, offset=offset, visible=visible_listings(viewer))
    return ListingPage(listings=[listing_out(x) for x in listings], limit=limit, offset=offset)


@router.get("/{listing_id}", response_model=ListingOut, responses=READ)
def get_listing(listing_id: CatalogId, session: SessionDep, viewer: ViewerDep) -> ListingOut:
    """A listing; an unpublished one only with its owner's (or an admin's) key, else 404."""
    return listing_out(visible_listing(viewer, session, listing_id))


@router.patch("/{listing_id}", response_model=ListingOut, responses=WRITE)
def update_listing(
    listing_id: CatalogId, body: ListingUpdate, principal: PrincipalDep, services: ServicesDep, session: SessionDep
) -> ListingOut:
    """Change the title, the claimed amenities (the whole new set), whether it is published and/or the declared
    bedroom count (``null`` clears it); the amenity roll-up follows."""
    listing = editable_listing(principal, session, listing_id)
    try:
        store.update_listing(
            session,
            listing,
            title=body.title,
            claimed=body.claimed_amenities,
            published=body.published,
            bedrooms=body.bedrooms if "bedrooms" in body.model_fields_set else store.UNCHANGED,
            taxonomy=services.taxonomy,
            model_id=services.model_id,
        )
    except (ValueError, TaxonomyError) as exc:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    session.commit()
    return listing_out(listing)


@router.delete(
    "/{listing_id}", status_code=status.HTTP_204_NO_CONTENT, responses=DELETE
)
def delete_listing(listing_id: CatalogId, principal: PrincipalDep, services: ServicesDep, session: SessionDep) -> Response:
    """Delete a listing with its claims and decisions; photos no other listing uses are deleted too."""
    deleted = store.delete_listing(session, editable_listing(principal, session, listing_id))
    session.commit()
    store.delete_orphan_files(session, services.photos, deleted)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


AmenityPath = Annotated[Text, Path(min_length=1, max_length=100, description="slug, name or synonym")]


@router.put(
    "/{listing_id}/amenities/{amenity}/decision",
    response_model=ListingAmenitiesOut,
    responses=WRITE,
)
def decide(
    listing_id: CatalogId,
    amenity: AmenityPath,
    body: DecisionIn,
    principal: PrincipalDep,
    services: ServicesDep,
    session: SessionDep,
) -> ListingAmenitiesOut:
    """The host confirms or rejects an amenity the model reported. Stored beside the model's detections (which
    stay as they are); search and the label export read it. Answers the updated checklist."""
    return _decide(editable_listing(principal, session, listing_id), amenity, body.decision, services, session)


@router.delete(
    "/{listing_id}/amenities/{amenity}/decision",
    response_model=ListingAmenitiesOut,
    responses=DELETE,
)
def undecide(
    listing_id: CatalogId, amenity: AmenityPath, principal: PrincipalDep, services: ServicesDep, session: SessionDep
) -> ListingAmenitiesOut:
    """Withdraw the host's decision: the model's report stands alone again."""
    return _decide(editable_listing(principal, session, listing_id), amenity, None, services, session)


def _decide(listing: Listing, amenity: str, decision: str | None, services, session) -> ListingAmenitiesOut:  # type: ignore[no-untyped-def]
    try:
        store.set_decision(
            session, listing, amenity, decision, taxonomy=services.taxonomy, model_id=services.model_id
        )
    except (ValueError, TaxonomyError) as exc:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    session.commit()
    return amenities_out(listing, services, session)


@router.get("/{listing_id}/amenities", response_model=ListingAmenitiesOut, responses=READ)
def get_amenities(
    listing_id: CatalogId, services: ServicesDep, session: SessionDep, viewer: ViewerDep
) -> ListingAmenitiesOut:
    """The listing's amenity checklist with photo evidence, and whether its photos are still being processed."""
    return amenities_out(visible_listing(viewer, session, listing_id), services, session)


def amenities_out(listing: Listing, services: Services, session: Session) -> ListingAmenitiesOut:
    summary = store.listing_amenities(session, listing, services.model_id, services.taxonomy)
    state = store.listing_processing_state(session, listing, services.model_id)
    return ListingAmenitiesOut(
        listing_id=listing.id,
        model=services.model_key,
        processing=ProcessingOut(
            state=state.state,
            total=state.total,
            pending=state.pending,
            running=state.running,
            done=state.done,
            failed=state.failed,
        ),
        amenities=[
            AmenityOut(
                slug=a.slug,
                name=a.name,
                group=a.group,
                status=a.status,
                claimed=a.claimed,
                seen=a.seen,
                score=a.score,
                threshold=a.threshold,
                photo_count=a.photo_count,
                evidence=[EvidenceOut(photo_id=e.photo_id, box=list(e.box), score=e.score) for e in a.evidence],
                decision=a.decision,
            )
            for a in summary.amenities
        ],
        confirmed=[a.slug for a in summary.confirmed],
        unverified=[a.slug for a in summary.unverified],
        discovered=[a.slug for a in summary.discovered],
        rejected=[a.slug for a in summary.rejected],
    )
