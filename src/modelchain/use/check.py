"""Check a model every way asked, reading it once: a signature bundle, the ledger, a test load.

`modelchain verify` is this module with a renderer in front; a library user gets the same
checks, in the same order, with the same refusals. The model's bytes are hashed once: when a
bundle is checked first, the ledger check reuses the SHA-256 of each file the bundle check read
(`digest_from_known`), so a large model is not read twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelchain.core.errors import VerificationError

if TYPE_CHECKING:  # pragma: no cover
    from modelchain.checks.verdict import Verification
    from modelchain.claims.bundle import VerifyResult
    from modelchain.claims.keys import PublicKey
    from modelchain.core.note import Verifier
    from modelchain.fs.progress import ProgressSink
    from modelchain.ledgers import Ledger

__all__ = ["Check", "CheckResult", "check"]


@dataclass(frozen=True)
class Check:
    """What to check one model against. `signature` and `public_key` go together (a bundle
    check); `test_load` loads the verified bytes in a child process."""

    path: str
    name: str | None = None
    version: int | None = None
    signers: Sequence[str] = ()
    keys: Sequence[Verifier] = ()
    ignore: Sequence[str] = ()
    follow_symlinks: bool = False
    allow_outside: bool = False
    signature: str | None = None
    public_key: PublicKey | None = None
    ignore_paths: Sequence[str] = ()
    test_load: bool = False
    load_format: str | None = None
    trusted: Sequence[str] = ()
    #: audit the whole ledger instead of proving the name's newest version by the index
    full: bool = False


@dataclass
class CheckResult:
    """What each check found; a failed check raises instead, so every field here passed."""

    path: str
    bundle: VerifyResult | None = None
    verification: Verification | None = None
    load: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        if self.verification is None:
            return self.bundle.as_dict() if self.bundle is not None else {"path": self.path}
        out = self.verification.as_dict()
        if self.load:
            out["load"] = self.load
        if self.bundle is not None:
            out["signature"] = self.bundle.as_dict()
        return out


def check_format(request: Check) -> None:
    """With a test load, the format is settled before a large file is hashed for nothing."""
    if request.test_load:
        from modelchain.use.guard import format_before_reading

        format_before_reading(request.path, request.load_format)


def check_signature(request: Check, progress: ProgressSink | None = None) -> VerifyResult | None:
    """The bundle check (None when no bundle was asked for)."""
    if request.signature is None or request.public_key is None:
        return None
    from modelchain.claims.bundle import verify_model

    return verify_model(
        request.path,
        request.signature,
        request.public_key,
        ignore_paths=request.ignore_paths,
        follow_symlinks=request.follow_symlinks,
        allow_outside=request.allow_outside,
        progress=progress,
    )


def check_ledger(
    request: Check,
    ledger: Ledger,
    bundle: VerifyResult | None = None,
    progress: ProgressSink | None = None,
) -> Verification:
    """The ledger check; after a bundle check, from the digests that check already read."""
    known = None
    if bundle is not None and bundle.sha256s:
        from modelchain.fs.digest import digest_from_known

        known = digest_from_known(
            request.path,
            bundle.sha256s,
            ignore=request.ignore,
            follow_symlinks=request.follow_symlinks,
            allow_outside=request.allow_outside,
        )
    return ledger.verify(
        request.path,
        name=request.name,
        keys=request.keys,
        ignore=request.ignore,
        follow_symlinks=request.follow_symlinks,
        allow_outside=request.allow_outside,
        signers=request.signers,
        digest=known,
        version=request.version,
        progress=progress,
        full=request.full,
    )


def check_load(request: Check, ledger: Ledger, name: str) -> dict[str, Any]:
    """The test load, in a fresh process so even a loader bug cannot touch this one; any
    refusal raises a `VerificationError` carrying the child's verdict in `.details`."""
    from modelchain.use.guard import verify_load_in_child

    verdict = verify_load_in_child(
        request.path,
        ledger_location=ledger.location,
        name=name,
        trusted=request.trusted,
        home=ledger.home.path,
        format=request.load_format,
    )
    if not verdict.get("loaded"):
        error = VerificationError(
            f"{request.path}: test load refused: {verdict.get('error', verdict)}"
        )
        error.exit_code = int(verdict.get("exit_code") or 1)
        error.details = {"verified": False, "load": verdict}  # type: ignore[attr-defined]
        raise error
    return verdict


def check(
    request: Check,
    open_ledger: Callable[[], Ledger] | None,
    *,
    on_bundle: Callable[[VerifyResult], None] | None = None,
    progress: ProgressSink | None = None,
) -> CheckResult:
    """Every check `request` asks for, in order: format, bundle, ledger, test load. Without
    a ledger (`open_ledger=None`) only the bundle is checked. `on_bundle` sees the bundle
    result as soon as it is known (a renderer shows it even if the ledger check then fails);
    `progress` is told of the bytes hashed (the library draws nothing itself)."""
    check_format(request)
    result = CheckResult(os.fspath(request.path))
    result.bundle = check_signature(request, progress)
    if result.bundle is not None and on_bundle is not None:
        on_bundle(result.bundle)
    if open_ledger is None:
        return result
    with open_ledger() as ledger:
        result.verification = check_ledger(request, ledger, result.bundle, progress)
        if request.test_load:
            result.load = check_load(request, ledger, result.verification.name)
    return result
