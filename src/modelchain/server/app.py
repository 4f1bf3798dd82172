"""The FastAPI application behind `modelchain serve` (the contract is docs/api.md): wiring.

`create_app` puts the parts together for one ledger: the readers (readers.py), the single
writer thread (batcher.py), tokens, metrics, the routes (routes.py, shapes in schemas.py),
the fast path and request guard in front of them (fastpath.py) and the web explorer. All
state lives in the objects made here, one set per app: nothing is cached at module level.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from modelchain import __version__
from modelchain.core.errors import UsageError
from modelchain.ledgers import LocalLedger
from modelchain.ledgers.locations import local_path
from modelchain.log.home import Home
from modelchain.server.answers import Answers
from modelchain.server.batcher import Batcher
from modelchain.server.fastpath import Guard, fast_handlers
from modelchain.server.lookups import LookupCache, NodeCache
from modelchain.server.metrics import Metrics
from modelchain.server.readers import Readers, SignedView
from modelchain.server.routes import add_routes
from modelchain.server.static import mount_explorer
from modelchain.server.tokens import TokenStore

DEFAULT_MAX_BODY = 1 << 20
DEFAULT_MAX_BATCH = 256

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_BODY", "app_from_env", "create_app"]


def create_app(
    location: str,
    *,
    home: str | os.PathLike[str] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> FastAPI:
    """The app for one ledger. `home` holds the operator key and tokens.json."""
    home_obj = Home(home) if home is not None else Home()
    tokens = TokenStore(home_obj)
    metrics = Metrics()
    answers = Answers()

    node_cache = NodeCache()
    lookup_cache = LookupCache()

    def open_ledger() -> LocalLedger:
        # shared by this process's readers: proofs share their upper nodes (which never
        # change once written), and lookups repeat until the next checkpoint
        return LocalLedger.open(
            location, home=home_obj, node_cache=node_cache, lookup_cache=lookup_cache
        )

    readers = Readers(open_ledger)
    signed_view = SignedView(readers)
    file = local_path(location)
    batcher = Batcher(
        open_ledger,
        max_batch=max_batch,
        on_batch=metrics.batch,
        # several workers on one SQLite file take turns by a lock beside it (not on it:
        # closing a descriptor of the ledger itself would drop SQLite's own locks)
        turn_file=None if file is None or os.name != "posix" else file + ".writer-turn",
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        first = readers.get()  # on the loop's thread: opened, so a bad ledger fails now
        readers.inline = first.store.local_path is not None
        await run_in_threadpool(batcher.start)
        try:
            yield
        finally:
            await run_in_threadpool(batcher.stop)
            readers.close()  # on this thread: SQLite's connection belongs to it

    app = FastAPI(
        title="modelchain",
        version=__version__,
        summary="A tamper-evident ledger of ML model digests: entries, proofs, checkpoints.",
        lifespan=lifespan,
        # the Swagger and ReDoc pages load their scripts from a CDN (blank offline); the
        # document itself stays at /openapi.json
        docs_url=None,
        redoc_url=None,
    )
    add_routes(
        app, readers=readers, batcher=batcher, tokens=tokens, metrics=metrics, answers=answers
    )
    fast = fast_handlers(
        readers=readers,
        signed_view=signed_view,
        batcher=batcher,
        tokens=tokens,
        metrics=metrics,
        answers=answers,
    )
    mount_explorer(app)  # the web explorer at /explorer/ (static.py), / redirects there
    return Guard(app, max_body=max_body, metrics=metrics, fast=fast)  # type: ignore[return-value]


# -- for uvicorn ----------------------------------------------------------------------------

ENV_LEDGER = "MODELCHAIN_SERVE_LEDGER"
ENV_MAX_BODY = "MODELCHAIN_SERVE_MAX_BODY"
ENV_MAX_BATCH = "MODELCHAIN_SERVE_MAX_BATCH"


def app_from_env() -> FastAPI:
    """The app factory uvicorn calls in each worker process (`serve --workers N`)."""
    location = os.environ.get(ENV_LEDGER)
    if not location:
        raise UsageError(f"{ENV_LEDGER} is not set")
    return create_app(
        location,
        max_body=int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY)),
        max_batch=int(os.environ.get(ENV_MAX_BATCH, DEFAULT_MAX_BATCH)),
    )
