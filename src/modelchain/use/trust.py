"""`modelchain trust`: what this verifier remembers about each log, and the way back.

The trust state (MODELCHAIN_HOME/trust) is what makes a rolled-back, forked or swapped ledger
detectable, so modelchain never changes it on the word of a ledger file. When a change was
intended (a project copied to be the log from now on, a ledger deleted on purpose, a log moved
to another disk or database), the operator says so here: `forget` drops what is remembered
about a log or one of its locations, `move` re-points where a log lives after checking that
the ledger there is that log, consistent with everything accepted for it before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from modelchain.core.errors import LedgerInvalid, UsageError, WayOut
from modelchain.ledgers.locations import display_location, local_path, resolve_location
from modelchain.log.home import Home

#: where to see what is remembered
_LIST = WayOut(command=("trust", "list"), cli=" (see `modelchain trust list`)")


def location_key(location: str | os.PathLike[str]) -> str:
    """The key the trust state remembers a ledger location under (as `Ledger` does)."""
    loc = resolve_location(location)
    path = local_path(loc)
    if path is not None:
        return path
    if loc.split("://", 1)[0].lower() in ("http", "https"):
        from modelchain.ledgers.client import normalise_url

        return normalise_url(loc)
    return display_location(loc)


def remembered(home: Home) -> list[dict[str, Any]]:
    """Every log this verifier remembers (see `TrustState.remembered_logs`)."""
    return home.trust.remembered_logs()


def _find(home: Home, origin: str) -> dict[str, Any]:
    for log in home.trust.remembered_logs():
        if log["origin"] == origin:
            return log
    raise UsageError(
        f"this verifier remembers no log {origin!r}",
        way_out=_LIST,
    )


def plan_forget(home: Home, origin: str | None = None, ledger: str | None = None) -> dict[str, Any]:
    """What `forget` would drop, without dropping it: the whole log (by origin, or the log
    living at `ledger`), or only one location where a copy of it was seen."""
    if (origin is None) == (ledger is None):
        raise UsageError(
            "name the log to forget",
            way_out=WayOut(
                flag=("--ledger",),
                library=": origin or ledger (not both)",
                cli=": ORIGIN or --ledger LOCATION (not both)",
            ),
        )
    if origin is not None:
        log = _find(home, origin)
        return {"origin": origin, "scope": "log", "log": log}
    assert ledger is not None
    key = location_key(ledger)
    found = home.trust.origin_at(key)
    if found is None:
        found = next(
            (log["origin"] for log in home.trust.remembered_logs() if log["location"] == key),
            None,
        )
    if found is None:
        raise UsageError(
            f"this verifier remembers no log at {ledger}",
            way_out=_LIST,
        )
    log = _find(home, found)
    scope = "log" if log["location"] in (key, None) else "location"
    return {"origin": found, "scope": scope, "log": log, "location": key}


def forget(plan: dict[str, Any], home: Home) -> dict[str, Any]:
    """Carry out a `plan_forget` plan (durably: the trust state is flushed before this
    returns); returns what was forgotten."""
    origin = plan["origin"]
    with home.trust as trust:
        if plan["scope"] == "log":
            locations = trust.forget_log(origin)
            return {"origin": origin, "forgot": "log", "locations": locations}
        trust.forget_location(plan["location"])
    return {"origin": origin, "forgot": "location", "locations": [plan["location"]]}


def move(home: Home, origin: str, new_location: str, keys: Sequence[Any] = ()) -> dict[str, Any]:
    """Make `new_location` the place where `origin` lives, once the ledger there is proven
    to be that log: its origin record names it, its checkpoint is signed, and it is the
    log accepted before or an extension of it (audited against the trust state)."""
    from modelchain.ledgers import Ledger, RemoteLedger

    _find(home, origin)
    with Ledger.open(new_location, home=home, keys=keys) as ledger:
        if isinstance(ledger, RemoteLedger):
            raise UsageError("a server's log lives on the server: there is nothing to move")
        found = ledger.store.origin()
        if found != origin:
            what = f"log {found!r}" if found is not None else "no origin record"
            raise LedgerInvalid(
                f"{new_location} holds {what}, not log {origin!r}: refusing to move the log there"
            )
        report = ledger.audit()
        key = ledger._trust_key()
    with home.trust as trust:  # durable before this returns
        previous = trust.move_log(origin, key)
    return {
        "origin": origin,
        "location": key,
        "previous": previous,
        "size": report.size,
    }
