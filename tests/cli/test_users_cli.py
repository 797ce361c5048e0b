"""``roomscan users``: accounts and keys from the command line; a key made here works on the API, a revoked one
does not, and ``listings add --owner`` hands a listing to a host."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run
from sqlalchemy import select

from roomscan import auth
from roomscan.catalog.models import Listing, User
from roomscan.errors import AuthenticationError
from roomscan.services import Services
from roomscan.settings import Settings


def _principal(key: str):  # type: ignore[no-untyped-def]
    services = Services.open(Settings.from_env())
    try:
        with services.sessions() as session:
            return auth.authenticate(session, key)
    finally:
        services.close()


def test_add_a_host_its_key_signs_in_until_revoked(capsys, env):
    code, key, err = run(capsys, "users", "add", "alice", "--role", "host")
    assert code == 0 and "created host alice" in err and "shown once" in err
    key = key.strip()
    assert key.startswith(auth.KEY_PREFIX) and _principal(key).name == "alice"
    code, second, _ = run(capsys, "users", "keys", "create", "alice", "--label", "laptop")
    assert code == 0
    code, out, _ = run(capsys, "users", "list", "--json")
    users = {u["name"]: u for u in json.loads(out)}
    assert users["admin"]["role"] == "admin" and [k["label"] for k in users["alice"]["keys"]] == ["first key", "laptop"]
    assert key not in out and second.strip() not in out  # only prefixes are listed
    code, _, err = run(capsys, "users", "keys", "revoke", auth.key_prefix(key))
    assert code == 0 and "revoked" in err
    with pytest.raises(AuthenticationError, match="revoked"):
        _principal(key)
    assert _principal(second.strip()).name == "alice"


def test_bad_names_roles_and_duplicates_are_refused(capsys, env):
    assert run(capsys, "users", "add", "bob", "--role", "owner")[0] == 2
    assert run(capsys, "users", "add", "bad name!")[0] == 2
    assert run(capsys, "users", "add", "carol")[0] == 0
    code, _, err = run(capsys, "users", "add", "carol")
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, "users", "keys", "revoke", "rsk_nothing")
    assert code != 0 and "no API key" in err


def test_listings_add_owner(capsys, env):
    run(capsys, "users", "add", "dana", "--no-key")
    assert run(capsys, "listings", "add", "Dana's flat", "--owner", "dana")[0] == 0
    assert run(capsys, "listings", "add", "Operator's flat")[0] == 0
    services = Services.open(Settings.from_env())
    with services.sessions() as session:
        owners = session.execute(select(Listing.title, User.name).join(User, Listing.owner_id == User.id)).all()
    services.close()
    assert sorted(owners) == [("Dana's flat", "dana"), ("Operator's flat", "admin")]
