"""`modelchain serve`: check the set-up, then hand the app to uvicorn.

Everything that can be wrong before the first request (no ledger, no key, port taken, a
public address by accident, FastAPI not installed) is found here and reported as one line,
rather than as a server that starts and then fails every request.
"""

from __future__ import annotations

import os
import socket
import sys

from modelchain.core.errors import UsageError, install_hint
from modelchain.ledgers.client import is_loopback  # the client's test: one rule for both ends


def _check_port(host: str, port: int) -> None:
    """Fail now with a clear message if the address cannot be bound."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def serve(
    location: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    allow_remote: bool = False,
    max_body: int = 1 << 20,
    max_batch: int = 256,
    log_level: str = "warning",
) -> None:
    """Run the HTTP service until interrupted."""
    if not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"--host {host} is not a loopback address: pass --allow-remote to serve other "
            "machines (and put TLS in front: tokens travel in clear otherwise)"
        )
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise UsageError(
            f"the HTTP service needs the server extra ({exc.name} is missing): "
            + install_hint("server")
        ) from None

    from modelchain.ledgers import Ledger
    from modelchain.ledgers.client import is_remote
    from modelchain.ledgers.locations import local_path, resolve_location
    from modelchain.log.block import n_blocks
    from modelchain.server.app import ENV_LEDGER, ENV_MAX_BATCH, ENV_MAX_BODY, create_app

    resolved = resolve_location(location)
    if is_remote(resolved):  # it would sign nothing and could only relay another's answers
        raise UsageError(
            f"{resolved} is a server: `modelchain serve` serves a ledger it holds (a file or "
            "postgresql://); run it where the ledger is"
        )
    resolved = local_path(resolved) or resolved  # workers may not share our idea of "."
    with Ledger.open(resolved) as ledger:
        if not ledger.store.exists():
            raise UsageError(f"{resolved} is not initialised: run `modelchain init` first")
        if not ledger.home.has_operator_key():  # it signs every checkpoint it publishes
            raise UsageError(
                f"no operator key at {ledger.home.key_path}: the service signs the checkpoints "
                "of the ledger it serves, so run it with the MODELCHAIN_HOME that holds the "
                "key `modelchain init` made for this ledger"
            )
        checkpoint = ledger.signed_checkpoint()
    _check_port(host, port)
    if workers > 1 and local_path(resolved) is not None:
        print(
            f"modelchain: note: {workers} workers on a file ledger take turns to write "
            "(SQLite serialises writers); PostgreSQL is the backend for many writers",
            file=sys.stderr,
        )
    print(
        f"modelchain: serving {resolved} (log {checkpoint.origin}, "
        f"{n_blocks(checkpoint.size)}) on http://{host}:{port}/api/v1 "
        f"with {workers} worker{'s' if workers > 1 else ''}",
        file=sys.stderr,
        flush=True,
    )
    if port != 0:  # port 0: the system picks one, known only once uvicorn has bound it
        shown = f"[{host}]" if ":" in host else host
        print(f"explorer: http://{shown}:{port}/", file=sys.stderr, flush=True)
    options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if workers == 1:
        app = create_app(resolved, max_body=max_body, max_batch=max_batch)
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    os.environ[ENV_LEDGER] = resolved
    os.environ[ENV_MAX_BODY] = str(max_body)
    os.environ[ENV_MAX_BATCH] = str(max_batch)
    uvicorn.run(
        "modelchain.server.app:app_from_env",
        factory=True,
        workers=workers,
        **options,  # type: ignore[arg-type]
    )
