"""Copy a ledger, block for block, to another location (`export` / `import`): the copy is
the same log (same Merkle root, same signed checkpoint), only stored differently."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelchain.checks.audit import AuditReport
from modelchain.core import merkle
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import LedgerInvalid, RollbackError, UsageError, WayOut
from modelchain.core.note import Verifier
from modelchain.ledgers.base import Ledger
from modelchain.ledgers.client import writes_refused
from modelchain.ledgers.local import LocalLedger
from modelchain.ledgers.locations import local_path
from modelchain.log.block import Block, build_index
from modelchain.log.store import StoredBlock

__all__ = ["copy_ledger"]


def copy_ledger(
    source: Ledger, destination: str | os.PathLike[str], *, keys: Sequence[Verifier] = ()
) -> AuditReport:
    """Copy an audited ledger, block for block, to a new location (`export` / `import`).

    Blocks, origin and signed checkpoint are copied verbatim, so the copy has the same Merkle
    root and the same signature: the copy is the same log, only stored differently. Nothing
    is created at `destination` unless the source audits and the copy succeeds.
    """
    copied: list[tuple[dict[str, Any], bytes]] = []

    def keep(block: Block, stored: StoredBlock) -> None:
        raw = block.to_dict()
        if canonical_json(raw) != stored.data:
            raw = stored.raw
        copied.append((raw, stored.data))

    report = source.audit(keys=keys, on_stored=keep)
    if isinstance(source, LocalLedger):  # the log lives where it was copied from, not the copy
        source.home.claim_log_location(report.origin, source._trust_key())
    frontier = merkle.Frontier.empty()
    nodes: list[tuple[int, int, bytes]] = []
    for _, data in copied:
        nodes.extend(frontier.append(merkle.leaf_hash(data)))
    if frontier.root() != report.root_hash:  # the source changed under us
        raise LedgerInvalid(f"{source.location}: changed while it was being copied; try again")
    target_path = local_path(destination)
    existed = target_path is None or Path(target_path).exists()
    try:
        with Ledger.open(destination, home=source.home, create=True) as target:
            _fill(target, copied, nodes, report, keys)
    except BaseException:
        if not existed and target_path is not None:
            for suffix in ("", "-wal", "-shm", ".checkpoint", ".lock"):
                Path(target_path + suffix).unlink(missing_ok=True)
        raise
    return report


def _fill(
    target: Ledger,
    copied: list[tuple[dict[str, Any], bytes]],
    nodes: list[tuple[int, int, bytes]],
    report: AuditReport,
    keys: Sequence[Verifier],
) -> None:
    if not isinstance(target, LocalLedger):
        raise writes_refused(target.location)
    with target.store.writer() as w:
        tip = w.tip()
        if tip.origin is not None or tip.size:
            raise UsageError(
                f"{target.location} already holds a ledger (log {tip.origin}); "
                "copy into a new, empty location"
            )
        known = target.home.known_origin(target._trust_key())
        if known is not None and known != report.origin:
            raise RollbackError(
                f"{target.location}: log {known!r} was accepted here before; "
                "refusing to put another log in its place",
                way_out=WayOut(
                    command=("trust", "forget", "--ledger", target.location),
                    cli=". If that log is gone on purpose, "
                    f"run `modelchain trust forget --ledger {target.location}`",
                ),
            )
        # the index the copied checkpoint signs, rebuilt from the copied blocks (a store
        # that keeps its nodes needs them; a proof from them is checked against the root)
        index = dict(build_index(copied).nodes)
        w.import_blocks(copied, nodes, report.origin, report.checkpoint, index)
    target.home.claim_log_location(report.origin, target._trust_key())
    target.home.remember_location(target._trust_key(), report.origin)
    target.audit(keys=keys)
