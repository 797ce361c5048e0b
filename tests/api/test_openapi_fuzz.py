"""Schemathesis fuzzes every documented operation: no 5xx, no undocumented status, every body as documented.

Each operation gets a bounded number of generated requests, valid and invalid ones: sent with the API key,
without it, and to a server that has no key (it refuses writes with 503), on SQLite and PostgreSQL, to a catalog
that holds one listing with one photo (small ids reach real rows). Schemathesis' default checks judge every answer. All distinct failures are reported at once, each with a
curl command that reproduces it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import schemathesis
from api_helpers import API_KEY, jpeg, make_listing, upload
from fastapi.testclient import TestClient

from roomscan.api import create_app
from roomscan.services import open_services

# Per operation and generation mode: the six runs take under a minute on two cores. Set
# ROOMSCAN_FUZZ_EXAMPLES for a deeper search (80 took two minutes and found nothing more).
MAX_EXAMPLES = int(os.environ.get("ROOMSCAN_FUZZ_EXAMPLES", "12"))

# A request the schema allows may be refused only for what the schema cannot state: the key (401, 403), a row
# that does not exist (404), bytes that do not decode as a photo (413, 415, 422), a name that is no amenity (422).
_ACCEPTED = ["2xx", "401", "403", "404", "413", "415", "422"]


def _config(server_has_key: bool) -> Any:
    if server_has_key:
        return schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {"expected-statuses": _ACCEPTED}}})
    # A server without a key refuses every write with its documented 503 (and nothing else answers 5xx).
    return schemathesis.Config.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {"expected-statuses": [*_ACCEPTED, "503"]},
                "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
            }
        }
    )


@pytest.fixture
def api_schema(services, settings, api_detector) -> Iterator[Callable[[bool], Any]]:
    """``api_schema(server_has_key)``: the app's schema, loaded through the app (schemathesis calls it
    in-process), with one listing and its photo seeded; a server without a key refuses every write (503)."""
    from schemathesis.python import asgi

    with TestClient(create_app(services=services, start_worker=False)) as client:
        listing_id = make_listing(client)
        assert upload(client, listing_id, ("room.jpg", jpeg())).status_code == 202

    def load(server_has_key: bool) -> Any:
        served = services if server_has_key else open_services(replace(settings, api_key=None), detector=api_detector)
        app = create_app(services=served, start_worker=False)  # no worker: the fuzzer never waits on detection
        return schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(server_has_key))

    yield load
    asgi.shutdown_lifespans()


Failures = dict[tuple[str, str], str]


def fuzz_operation(operation: Any, mode: Any, headers: dict[str, str], failures: Failures) -> int:
    """Send up to MAX_EXAMPLES generated requests to one operation; record each distinct failure. Returns the
    number of requests sent."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.core.failures import FailureGroup

    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: CI does not flake
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.headers = {**(case.headers or {}), **headers}
        try:
            case.call_and_validate()
        except FailureGroup as group:
            for failure in group.exceptions:
                failures.setdefault((operation.label, failure.title), f"{failure.message}\n{case.as_curl_command()}")
        except Exception as exc:  # noqa: BLE001 - the app raised out of its handlers: the client saw a 500
            failures.setdefault((operation.label, type(exc).__name__), f"{exc}\n{case.as_curl_command()}")

    try:
        run()
    except Unsatisfiable:  # nothing about this operation can be made invalid (e.g. it takes no parameters)
        pass
    return sent


@pytest.mark.parametrize(
    ("server_has_key", "headers"),
    [(True, {"X-API-Key": API_KEY}), (True, {}), (False, {"X-API-Key": API_KEY})],
    ids=["with-key", "without-key", "server-without-key"],
)
def test_every_operation_answers_as_documented(api_schema, server_has_key, headers):
    schema = api_schema(server_has_key)
    # Deletions last, the listing itself at the very end: the operations before them find the seeded rows.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (op.method.upper() == "DELETE", -len(op.path)),
    )
    failures: Failures = {}
    sent = sum(
        fuzz_operation(operation, mode, headers, failures)
        for operation in operations
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    )
    print(f"schemathesis: {len(operations)} operations, {sent} requests, {len(failures)} distinct failures")
    assert len(operations) >= 17 and sent > len(operations)
    report = "\n\n".join(f"{label}: {title}\n{detail}" for (label, title), detail in sorted(failures.items()))
    assert not failures, f"{len(failures)} distinct failures:\n\n{report}"


def test_no_generated_write_lets_one_host_change_another_hosts_listing(settings, api_detector):
    """Property-based: for every write operation on a listing, schemathesis generates requests (valid and
    invalid) with host B's key, aimed at host A's listing and photo. None may succeed, and A's listing, its
    photos, claims and checklist are exactly as before."""
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hypothesis_settings
    from schemathesis.python import asgi

    from roomscan import auth
    from roomscan.catalog.models import Role

    services = open_services(replace(settings, write_rate="100000/minute", upload_rate="100000/minute"),
                             detector=api_detector)
    try:
        with services.sessions() as session, session.begin():
            key_a = auth.create_key(session, auth.create_user(session, "host-a", Role.HOST))
            key_b = auth.create_key(session, auth.create_user(session, "host-b", Role.HOST))
        app = create_app(services=services, start_worker=False)
        with TestClient(app) as client:
            r = client.post("/api/v1/listings", json={"title": "A's flat", "claimed_amenities": ["bed"]},
                            headers={"X-API-Key": key_a})
            listing_id = r.json()["id"]
            photo_id = upload(client, listing_id, ("a.jpg", jpeg(seed=4)), headers={"X-API-Key": key_a}).json()[
                "photos"][0]["photo_id"]

            def state() -> tuple[Any, Any]:
                return (client.get(f"/api/v1/listings/{listing_id}").json(),
                        client.get(f"/api/v1/listings/{listing_id}/amenities").json())

            before = state()
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [
            op for op in (result.ok() for result in schema.get_all_operations())
            if op.method.upper() in ("POST", "PUT", "PATCH", "DELETE") and "{listing_id}" in op.path
        ]
        assert len(operations) >= 6
        succeeded: list[str] = []
        sent = 0

        def attack(operation: Any, mode: Any) -> None:
            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                                 phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                nonlocal sent
                sent += 1
                params = dict(case.path_parameters or {})
                params["listing_id"] = listing_id
                if "photo_id" in params:
                    params["photo_id"] = photo_id
                case.path_parameters = params
                case.headers = {**(case.headers or {}), "X-API-Key": key_b}
                response = case.call()
                if 200 <= response.status_code < 300:
                    succeeded.append(f"{operation.label}: {response.status_code}\n{case.as_curl_command()}")

            try:
                run()
            except Exception as exc:  # Unsatisfiable: nothing to generate for this mode
                if type(exc).__name__ != "Unsatisfiable":
                    raise

        for operation in operations:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                attack(operation, mode)
        asgi.shutdown_lifespans()
        assert sent > len(operations)
        assert not succeeded, "\n\n".join(succeeded)
        with TestClient(app) as client:
            assert state() == before
    finally:
        services.close()
