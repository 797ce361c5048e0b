"""``roomscan users ...``: accounts (admins, hosts) and their API keys, for the operator of the catalog."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from roomscan.cli._catalog import open_catalog
from roomscan.cli._common import DbOpt, JsonOpt
from roomscan.cli._console import console, err_console

users_app = typer.Typer(help="Accounts (admin, host) and their API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of an account: shown once, stored only as a hash.", no_args_is_help=True)
users_app.add_typer(keys_app, name="keys")

NameArg = typer.Argument(..., help="The account's name (lower case: letters, digits, '.', '_', '-').",
                         show_default=False)


def _when(value) -> str:  # type: ignore[no-untyped-def]
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@users_app.command("add")
def users_add(
    name: str = NameArg,
    role: str = typer.Option("host", "--role", help="admin (changes anything) or host (changes its own listings)."),
    key: bool = typer.Option(True, "--key/--no-key", help="Also create a first API key and print it (once)."),
    db: str | None = DbOpt,
) -> None:
    """Create an account; prints its first API key, which is not shown again."""
    from roomscan import auth

    services = open_catalog(db)
    with services.sessions() as session, session.begin():
        user = auth.create_user(session, name, role)
        secret = auth.create_key(session, user, label="first key") if key else None
    err_console.print(f"created {user.role} {user.name}", highlight=False, markup=False)
    if secret:
        _print_key(secret)


def _print_key(secret: str) -> None:
    err_console.print("API key (shown once; only its hash is stored):", highlight=False)
    console.print(secret, highlight=False, markup=False, soft_wrap=True)


@users_app.command("list")
def users_list(
    as_json: bool = JsonOpt,
    db: str | None = DbOpt,
) -> None:
    """Accounts with their keys (prefix, created, last used, revoked)."""
    from roomscan import auth

    services = open_catalog(db)
    with services.sessions() as session:
        users = [
            {
                "name": u.name,
                "role": u.role,
                "created": _when(u.created_at),
                "keys": [{"prefix": k.prefix, "label": k.label, "created": _when(k.created_at),
                          "last_used": _when(k.last_used_at), "revoked": _when(k.revoked_at)} for k in u.keys],
            }
            for u in auth.list_users(session)
        ]
    if as_json:
        console.print_json(json.dumps(users))
        return
    table = Table("name", "role", "key", "label", "created", "last used", "revoked")
    for u in users:
        rows = u["keys"] or [{"prefix": "-", "label": None, "created": u["created"], "last_used": "-", "revoked": "-"}]
        for i, k in enumerate(rows):
            table.add_row(escape(u["name"]) if i == 0 else "", u["role"] if i == 0 else "", k["prefix"],
                          escape(k["label"] or ""), k["created"], k["last_used"], k["revoked"])
    console.print(table)


@keys_app.command("create")
def keys_create(
    name: str = NameArg,
    label: str | None = typer.Option(None, "--label", help="What the key is for (e.g. 'laptop', 'sync job')."),
    db: str | None = DbOpt,
) -> None:
    """Create another API key for an account and print it (once)."""
    from roomscan import auth

    services = open_catalog(db)
    with services.sessions() as session, session.begin():
        secret = auth.create_key(session, auth.get_user(session, name), label=label)
    _print_key(secret)


@keys_app.command("revoke")
def keys_revoke(
    prefix: str = typer.Argument(..., help="The key's prefix (`roomscan users list` shows it), or the whole key.",
                                 show_default=False),
    db: str | None = DbOpt,
) -> None:
    """Revoke an API key: requests with it are refused (401) from now on."""
    from roomscan import auth

    services = open_catalog(db)
    with services.sessions() as session, session.begin():
        key = auth.revoke_key(session, auth.key_prefix(prefix.strip()))
        owner = key.user.name
    err_console.print(f"revoked key {key.prefix} of {owner}", highlight=False, markup=False)
