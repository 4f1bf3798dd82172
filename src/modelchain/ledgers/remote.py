"""A `modelchain serve` server's ledger, read and written over its API: every answer is
proven here before it is believed. A checkpoint is accepted only if it is signed by the
log's key, is for the log this address served before, and extends the newest checkpoint
accepted for that log (by a consistency proof the server must give); each entry is proven
into it by an inclusion proof, or by recomputing the root from the whole log.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from modelchain.checks.audit import AuditReport
from modelchain.core import merkle
from modelchain.core.canonical import canonical_json
from modelchain.core.errors import InvalidProof, LedgerInvalid, UsageError, WayOut
from modelchain.core.index import Proof as IndexProof
from modelchain.core.note import Checkpoint, Verifier
from modelchain.fs.digest import PathDigest, manifest_to_json
from modelchain.ledgers.base import Ledger, Source
from modelchain.ledgers.client import LedgerClient, NameAnswer, is_remote, writes_refused
from modelchain.ledgers.locations import resolve_location
from modelchain.log.block import Block, Registration, chain_hash_matches, n_blocks
from modelchain.log.home import Home
from modelchain.log.store import Store, StoredBlock

__all__ = ["RemoteLedger"]

#: a check that does without the server's index proofs (proofs of the versions its search
#: finds: a hidden newest version is then not ruled out)
_FULL = WayOut(
    flag=("--full",),
    cli="; `verify --full` checks without it, trusting the server's search",
    library="; verify(full=True) checks without it",
)

#: a server's entries read one by one with an inclusion proof each, up to this many; more
#: are checked by recomputing the root from the whole log
PROVE_EACH = 32


class RemoteLedger(Ledger):
    """A server's ledger (`https://...`, or `http://` on loopback), checked with the keys
    given or the key pinned for its log."""

    @classmethod
    def _serves(cls, source: Source) -> bool:
        if isinstance(source, LedgerClient):
            return True
        if isinstance(source, Store):
            return False
        return is_remote(resolve_location(source))

    def __init__(
        self,
        source: Source = None,
        home: Home | str | os.PathLike[str] | None = None,
        keys: Sequence[Verifier] = (),
        *,
        create: bool = False,
    ) -> None:
        super().__init__(source, home, keys, create=create)
        client = self.store
        if not isinstance(client, LedgerClient):  # `_serves` chose this kind: cannot happen
            raise UsageError(f"{client.location} is not a server's ledger")
        #: the HTTP client of the server's API (what it answers is checked here)
        self.client = client
        #: the server's newest checkpoint this object accepted: (note, checkpoint, trusted before)
        self._remote_accepted: tuple[str, Checkpoint, int | None] | None = None
        #: the server's proof of the name being verified (None: it gives none), fetched
        #: before its checkpoint is accepted
        self._shown: tuple[str, NameAnswer | None] | None = None

    def verifier_for(self, origin: str, keys: Sequence[Verifier] = ()) -> Verifier:
        """The key that must have signed `origin`'s checkpoints: one of `keys` (else those
        this ledger was opened with), else the key pinned for that log."""
        return self.client.verifier(origin, keys or self.keys, self.home)

    def init(self, origin: str | None = None) -> str:
        raise writes_refused(self.location)

    def _before_hashing(self) -> None:
        self.client.token()  # refuse before hashing a large model for nothing

    def _audited(self, note: str, checkpoint: Checkpoint) -> None:
        super()._audited(note, checkpoint)
        self.client.pin(self.home)

    # -- reading ----------------------------------------------------------------------------

    def checkpoint(self) -> str:
        """The server's newest signed checkpoint note, once accepted."""
        return self._remote_checkpoint()[0]

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[Block, bytes]]:
        """Entries with their exact leaf data, each proven into the accepted checkpoint."""
        yield from self._proven_entries(start, stop)

    def read_checkpoint(self) -> tuple[str, Checkpoint]:
        """The server's newest accepted note and its checkpoint."""
        note = self.checkpoint()
        cached = self._read_cache
        if cached is not None and cached[0] == note:
            return cached
        checkpoint = self._open_checkpoint(note, self.store.origin(), ())
        self._read_cache = (note, checkpoint)
        return note, checkpoint

    def leaf_hash(self, index: int) -> bytes:
        """The Merkle leaf hash of entry `index`, over the bytes the server serves."""
        if 0 <= index < len(self):
            return merkle.leaf_hash(self.client.entry(index).data)
        raise UsageError(f"no block {index}: the ledger has {n_blocks(len(self))}")

    def _accepted(self, keys: Sequence[Verifier]) -> tuple[str, Checkpoint, int | None]:
        return self._remote_checkpoint(keys)

    def _proven_history(
        self, name: str, digest: PathDigest, version: int | None, keys: Sequence[Verifier]
    ) -> tuple[list[Block], AuditReport] | None:
        """As `Ledger._proven_history`, under the checkpoint the server's index proof names:
        that checkpoint is accepted first (signed by the log's key, extending the one accepted
        before), so an append on the server between two requests is no refusal."""
        answer = self.client.name_proof(name)
        if answer is not None:
            self._remote_checkpoint(keys, answer.note)
        self._shown = (name, answer)
        try:
            return super()._proven_history(name, digest, version, keys)
        finally:
            self._shown = None

    def _name_proof(
        self, name: str, checkpoint: Checkpoint
    ) -> tuple[IndexProof, tuple[int, bytes, list[bytes]] | None]:
        """The server's index proof of `name` and its newest entry, parsed strictly (the
        caller checks them against `checkpoint`). The checkpoint signs an index, so a server
        that gives no proof of it is refused: falling back to its search would let it hide
        the newest version."""
        shown = self._shown
        answer = (
            shown[1] if shown is not None and shown[0] == name else self.client.name_proof(name)
        )
        if answer is None:
            raise LedgerInvalid(
                f"{self.location}: its signed checkpoint carries an index, but the server "
                f"gives no index proof of {name!r}: it cannot show that no newer version is "
                "hidden (a server older than this client, or one that hides)",
                way_out=_FULL,
            )
        accepted = self._remote_accepted
        if accepted is None or accepted[1] != checkpoint or answer.note != accepted[0]:
            raise LedgerInvalid(
                f"{self.location}: the index proof of {name!r} is under another checkpoint "
                "than the one accepted"
            )
        try:
            proof = IndexProof.from_bytes(answer.index_proof)
        except InvalidProof as exc:
            raise LedgerInvalid(
                f"{self.location}: the server's index proof of {name!r} is malformed ({exc})"
            ) from None
        if answer.newest is None:
            return proof, None
        stored, size, inclusion = answer.newest
        if size != checkpoint.size:
            raise LedgerInvalid(
                f"{self.location}: the server proved entry {stored.position} into a tree of "
                f"{n_blocks(size)}, but its checkpoint covers {n_blocks(checkpoint.size)}"
            )
        return proof, (stored.position, stored.data, inclusion)

    def _history(self, name: str, keys: Sequence[Verifier]) -> tuple[list[Block], AuditReport]:
        """Proofs of the name's entries, not a download of the log."""
        return self._remote_history(name, keys)

    def _binding(self, name: str) -> tuple[tuple[str, int], set[str]]:
        """As `Ledger._binding`: a server's versions of `name` are read from proofs of its
        entries (the checkpoint gives the origin); the server checks the binding again."""
        history, report = self._remote_history(name, ())
        version = history[-1].version + 1 if history else 1
        return (report.origin, version), {s.sig for b in history for s in b.signatures}

    def append_many(self, entries: Sequence[Registration]) -> list[Block]:
        """Register each entry on the server, checking each answer (see `_submit_remote`)."""
        return [self._submit_remote(entry) for entry in entries]

    # -- proofs: the server's, checked against a signed root by whoever uses them -----------

    def _inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.client.inclusion_proof(index, size)

    def _consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return self.client.consistency_proof(old_size, new_size)

    def _prefix_root(self, size: int, signed: Checkpoint) -> bytes:
        """A server's root of an older tree size, believed only once a consistency proof
        ties it to the signed checkpoint this client accepted."""
        root, proof = self.client.prefix_root(size, signed.size)
        try:
            merkle.verify_consistency(size, signed.size, root, signed.root_hash, proof)
        except InvalidProof as exc:
            raise InvalidProof(
                f"{self.location}: the root the server gives for the tree of "
                f"{n_blocks(size)} is not consistent with its signed checkpoint ({exc})"
            ) from None
        return root

    # -- everything the server says is checked here ----------------------------------------

    def _remote_checkpoint(
        self, keys: Sequence[Verifier] = (), note: str | None = None
    ) -> tuple[str, Checkpoint, int | None]:
        """The server's newest checkpoint (or the `note` one of its answers is under),
        accepted only if it is signed by the log's key, is for the log this address served
        before, and extends the newest checkpoint accepted for that log (by a consistency
        proof the server must give). Returns the note, the checkpoint and the size accepted
        before (None: first sight)."""
        accepted = self._remote_accepted
        if accepted is not None and (note is None or note == accepted[0]):
            return accepted
        if note is None:
            note = self.client.checkpoint() or ""
        origin = self.client.origin()
        self._check_same_log(origin)
        checkpoint = self._open_checkpoint(note, origin, keys)
        previously = self._check_trusted(checkpoint, self._prove_remote_extends(checkpoint))
        self._accept_remote(note, checkpoint, previously)
        assert self._remote_accepted is not None
        return self._remote_accepted

    def _accept_remote(self, note: str, checkpoint: Checkpoint, previously: int | None) -> None:
        self.home.accept_checkpoint(checkpoint.origin, checkpoint.size, note)
        self.home.remember_location(self._trust_key(), checkpoint.origin)
        self.client.pin(self.home)
        self._remote_accepted = (note, checkpoint, previously)

    def _prove_remote_extends(self, checkpoint: Checkpoint) -> Callable[[int, bytes], bool]:
        """A check that `checkpoint` extends an older tree, by the server's consistency proof."""

        def check(old_size: int, old_root: bytes) -> bool:
            proof = self.client.consistency_proof(old_size, checkpoint.size)
            try:
                merkle.verify_consistency(
                    old_size, checkpoint.size, old_root, checkpoint.root_hash, proof
                )
            except InvalidProof:
                return False
            return True

        return check

    def _proven(self, index: int, checkpoint: Checkpoint) -> tuple[Block, bytes]:
        """Entry `index` of a server's ledger, its leaf data proven into `checkpoint`."""
        stored = self.client.entry(index)
        proof = self.client.inclusion_proof(index, checkpoint.size)
        try:
            merkle.verify_inclusion(
                index, checkpoint.size, merkle.leaf_hash(stored.data), proof, checkpoint.root_hash
            )
        except InvalidProof as exc:
            raise InvalidProof(
                f"{self.location}: entry {index} is not proven into the signed checkpoint "
                f"of {n_blocks(checkpoint.size)} ({exc})"
            ) from None
        return Block.from_raw(stored.raw, index), stored.data

    def _proven_entries(self, start: int, stop: int | None) -> Iterator[tuple[Block, bytes]]:
        """A range of a server's entries, checked against its accepted checkpoint: a few by
        inclusion proofs, many by recomputing the root from every leaf (fewer requests)."""
        _note, checkpoint, _before = self._remote_checkpoint()
        stop = checkpoint.size if stop is None else min(stop, checkpoint.size)
        if start >= stop:
            return
        if stop - start <= PROVE_EACH:
            for index in range(start, stop):
                yield self._proven(index, checkpoint)
            return
        frontier = merkle.Frontier.empty()
        kept: list[StoredBlock] = []
        for stored in self.client.blocks(0, checkpoint.size):
            frontier.append(merkle.leaf_hash(stored.data))
            if start <= stored.position < stop:
                kept.append(stored)
        if frontier.size != checkpoint.size or frontier.root() != checkpoint.root_hash:
            raise LedgerInvalid(
                f"{self.location}: the entries served do not match the signed checkpoint "
                f"of {n_blocks(checkpoint.size)} (Merkle root differs)"
            )
        for stored in kept:
            yield Block.from_raw(stored.raw, stored.position), stored.data

    def _remote_history(
        self, name: str, keys: Sequence[Verifier]
    ) -> tuple[list[Block], AuditReport]:
        """Every version of `name` on a server, each proven into its accepted checkpoint.

        The server's search finds them; a version it leaves out in the middle shows as a gap
        in the version numbers. (Withholding the newest versions cannot be ruled out without
        reading the whole log: that is what `audit` does.)"""
        note, checkpoint, previously = self._remote_checkpoint(keys)
        history: list[Block] = []
        for index in sorted(i for i in self.store.find(name=name) if i < checkpoint.size):
            block, _data = self._proven(index, checkpoint)
            if block.name != name:
                raise LedgerInvalid(
                    f"{self.location}: searched for {name!r}, was given entry {index} "
                    f"of {block.name!r}"
                )
            if block.version != len(history) + 1:
                raise LedgerInvalid(
                    f"{self.location}: searched for {name!r}, was given v{block.version} "
                    f"(entry {index}) after v{len(history)}: versions were left out"
                )
            history.append(block)
        report = AuditReport(
            location=self.location,
            origin=checkpoint.origin,
            size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            checkpoint=note,
            previously_trusted=previously,
            proofs_only=True,
        )
        return history, report

    def _submit_remote(self, entry: Registration) -> Block:
        """Register on a server, then check its answer: the checkpoint is signed by the
        log's key and extends the one accepted before, the entry is proven into it, and the
        entry records exactly what was sent: the claim, its provenance and the signatures
        made here (a server that drops, adds or alters one is caught)."""
        _note, before, _previously = self._remote_checkpoint()
        manifest = None if entry.manifest is None else manifest_to_json(entry.manifest)
        sent: dict[str, Any] = {
            "name": entry.name,
            "digest": entry.model_hash,
            "kind": entry.kind,
            "size": entry.size,
            "metadata": dict(entry.metadata),
            "manifest": manifest,
        }
        if entry.provenance is not None:
            sent["provenance"] = dict(entry.provenance)
        if entry.signatures:
            sent["signatures"] = [s.to_json() for s in entry.signatures]
        if entry.force:  # absent means false: a server that predates the field still takes it
            sent["force"] = True
        answer = self.client.submit(sent)
        checkpoint = self._open_checkpoint(answer.note, before.origin, ())
        if answer.size != checkpoint.size or not 0 <= answer.index < checkpoint.size:
            raise InvalidProof(
                f"{self.location}: the server proved entry {answer.index} into a tree of "
                f"{n_blocks(answer.size)}, but its checkpoint covers {n_blocks(checkpoint.size)}"
            )
        try:
            merkle.verify_inclusion(
                answer.index,
                checkpoint.size,
                merkle.leaf_hash(answer.data),
                answer.proof,
                checkpoint.root_hash,
            )
        except InvalidProof as exc:
            raise InvalidProof(
                f"{self.location}: the new entry {answer.index} is not proven into the "
                f"checkpoint the server signed for it ({exc})"
            ) from None
        self._remote_accepted = None
        previously = self._check_trusted(checkpoint, self._prove_remote_extends(checkpoint))
        block = Block.from_raw(answer.raw, answer.index)
        if answer.existing and not entry.force:
            return self._check_existing(block, entry, answer.note, checkpoint, previously)
        got: dict[str, Any] = {
            "name": block.name,
            "digest": block.model_hash,
            "kind": block.kind,
            "size": block.size,
            "metadata": dict(block.metadata),
            "manifest": None if block.manifest is None else manifest_to_json(block.manifest),
        }
        if block.provenance is not None:
            got["provenance"] = dict(block.provenance)
        if block.signatures:
            got["signatures"] = [s.to_json() for s in block.signatures]
        sent.pop("force", None)
        differ = [
            k
            for k in {**sent, **got}
            if k not in sent or k not in got or canonical_json(sent[k]) != canonical_json(got[k])
        ]
        differ += sorted(block.extra)  # fields nobody sent
        if differ:
            what = ", ".join(differ)
            raise LedgerInvalid(
                f"{self.location}: the server recorded entry {answer.index} with other "
                f"{what} than were sent"
            )
        if not chain_hash_matches(block):
            raise LedgerInvalid(
                f"{self.location}: entry {answer.index}: current_hash does not match its contents"
            )
        for _signature, problem in block.signature_problems(checkpoint.origin):
            if problem is not None:  # recorded as another version than the one signed
                raise LedgerInvalid(
                    f"{self.location}: entry {answer.index} ({block.label}): {problem}"
                )
        self._accept_remote(answer.note, checkpoint, previously)
        return block

    def _check_existing(
        self,
        block: Block,
        entry: Registration,
        note: str,
        checkpoint: Checkpoint,
        previously: int | None,
    ) -> Block:
        """A server that appended nothing must show the registration it means: proven into
        its signed checkpoint (checked by the caller), of this name, with these bytes."""
        if (block.name, block.kind, block.model_hash) != (
            entry.name,
            entry.kind,
            entry.model_hash,
        ):
            raise LedgerInvalid(
                f"{self.location}: the server says {entry.name!r} is registered already, "
                f"but shows entry {block.index} of {block.name!r} ({block.model_hash[:12]}…)"
            )
        if not chain_hash_matches(block):
            raise LedgerInvalid(
                f"{self.location}: entry {block.index}: current_hash does not match its contents"
            )
        self._accept_remote(note, checkpoint, previously)
        return dataclasses.replace(block, existing=True)
