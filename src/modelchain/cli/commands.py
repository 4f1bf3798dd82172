"""The `modelchain` command: parses arguments, calls the library, prints.

No rule lives here. Every failure the library raises is a `ModelchainError` carrying its exit
code (1: verification failed; 2: usage error or unreadable input); `main` turns it into one
line on stderr (and a JSON object on stdout with `--json`), never a traceback. Heavy modules
are imported inside the commands so that `modelchain --help` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from modelchain import __version__

EPILOG = (
    "Exit status: 0 verified/success, 1 verification failed, 2 usage error or unreadable input.\n\n"
    "Ledger: --ledger or MODELCHAIN_LEDGER (default .modelchain/ledger.db); *.json is the seed "
    "format, postgresql://user@host/db?schema=NAME a PostgreSQL database, "
    "https://host:port a `modelchain serve` server, any other path SQLite. "
    "Keys and trust state: MODELCHAIN_HOME."
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _State:
    def __init__(self) -> None:
        self.ledger: str | None = None


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` on every command that reports (errors too: `main` looks for it)."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout."
    )(f)


def ledger_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def set_ledger(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.ensure_object(_State).ledger = value

    return click.option(
        "--ledger",
        metavar="LOCATION",
        expose_value=False,
        callback=set_ledger,
        help="Ledger to use (overrides the global --ledger).",
    )(f)


def hashing_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--allow-outside",
        is_flag=True,
        help="With --follow-symlinks, also follow links that leave the model directory.",
    )(f)
    f = click.option(
        "--follow-symlinks",
        is_flag=True,
        help="Hash symbolic links inside a model directory as the files they point to.",
    )(f)
    f = click.option(
        "--ignore",
        "ignore",
        multiple=True,
        metavar="PATTERN",
        help="Leave out matching paths of a directory (glob; repeatable). Default: .git",
    )(f)
    return f


def provenance_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """`register`'s options for who vouches for a model and how it was made."""
    f = click.option(
        "--no-provenance",
        is_flag=True,
        help="Do not record library versions and the git commit automatically.",
    )(f)
    f = click.option(
        "--metric",
        "metrics",
        multiple=True,
        metavar="KEY=VALUE",
        help="A metric to record in the provenance (value parsed as JSON if it can be).",
    )(f)
    f = click.option(
        "--param",
        "params",
        multiple=True,
        metavar="KEY=VALUE",
        help="A hyperparameter to record (value parsed as JSON if it can be); repeatable.",
    )(f)
    f = click.option(
        "--data",
        "data",
        multiple=True,
        metavar="PATH",
        help="Training data file or directory whose SHA-256 to record; repeatable.",
    )(f)
    f = click.option(
        "--provenance",
        "provenance_file",
        metavar="FILE",
        help="An in-toto Statement (its subject must be this model) or a provenance "
        "predicate, as JSON.",
    )(f)
    f = click.option(
        "--password-file",
        metavar="FILE",
        help="File holding the password of encrypted --sign-key keys "
        "(default: MODELCHAIN_KEY_PASSWORD).",
    )(f)
    f = click.option(
        "--sign-key",
        "sign_keys",
        multiple=True,
        metavar="KEY",
        help="Sign the registration with this private key: a key name (modelchain key list) "
        "or a PEM file given as a path (./ci.pem); repeatable.",
    )(f)
    return f


def _read_password(path: str | None) -> bytes | None:
    """A password file's first line (None: no file given; the key module then falls back to
    MODELCHAIN_KEY_PASSWORD)."""
    if path is None:
        return None
    from modelchain.claims.keys import read_password_file

    return read_password_file(path)


def _private_keys(specs: Sequence[str], password_file: str | None, home: Any) -> list[Any]:
    from modelchain.claims.keys import resolve_private_key

    password = _read_password(password_file)
    return [resolve_private_key(spec, home, password) for spec in specs]


def key_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--key",
        "keys",
        multiple=True,
        metavar="VKEY",
        envvar="MODELCHAIN_VERIFIER_KEY",
        help="Verifier key (name+id+key) trusted to sign the checkpoint; repeatable. "
        "Default: the operator key in MODELCHAIN_HOME.",
    )(f)


def _ignores(patterns: Sequence[str]) -> tuple[str, ...]:
    return tuple(patterns) if patterns else (".git",)


def _verifiers(keys: Sequence[str]) -> list[Any]:
    from modelchain.core.note import Verifier

    out = []
    for key in keys:
        for part in key.split():
            out.append(Verifier.from_string(part))
    return out


def _show_pin(notice: Any) -> None:
    """A server's key pinned on first use (`log.home.PinNotice`), said out loud as SSH does."""
    click.echo(
        f"modelchain: pinned the verifier key of log {notice.origin} served by "
        f"{notice.location} (trust on first use): {notice.key}; pin it yourself with "
        "--key VKEY or MODELCHAIN_VERIFIER_KEY",
        err=True,
    )


def _home() -> Any:
    """MODELCHAIN_HOME, telling the user of each server key it pins on first use."""
    from modelchain.log.home import Home

    return Home(notify=_show_pin)


def _open_ledger(*, create: bool = False, keys: Sequence[str] = ()) -> Any:
    """The --ledger ledger; `keys` (--key) check a server's checkpoints (see docs/remote.md)."""
    from modelchain.ledgers import Ledger

    state = click.get_current_context().ensure_object(_State)
    return Ledger.open(state.ledger, create=create, keys=_verifiers(keys), home=_home())


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _bar() -> Any:
    """The terminal progress bar for a command that hashes (shown only on a terminal, and only
    when the work takes more than a second): the library itself never draws one."""
    from modelchain.cli.progress import Progress

    return Progress(None, "hashing")


def _fmt_time(ts: float) -> str:
    from modelchain.core.canonical import utc_text

    return utc_text(ts)


# -- the group ----------------------------------------------------------------------------


@click.group(context_settings=CONTEXT, epilog=EPILOG)
@click.version_option(__version__, "-V", "--version", prog_name="modelchain")
@click.option(
    "--ledger",
    metavar="LOCATION",
    envvar="MODELCHAIN_LEDGER",
    help="Ledger: a *.json path (seed format), postgresql://host/db?schema=NAME, a server "
    "(https://host:port), any other path (SQLite). Default: .modelchain/ledger.db",
)
@click.pass_context
def cli(ctx: click.Context, ledger: str | None) -> None:
    """Record ML model digests in a signed, tamper-evident ledger, and check models against it."""
    ctx.ensure_object(_State).ledger = ledger


@cli.command()
@click.option("--origin", help="Log origin (a unique name such as example.com/ml-ledger).")
@ledger_option
@json_option
def init(origin: str | None, as_json: bool) -> None:
    """Create the ledger and, if missing, the operator's signing key."""
    from modelchain.core.note import Checkpoint, parse_note

    with _open_ledger(create=True) as ledger:
        note = ledger.init(origin)
        cp = Checkpoint.parse(parse_note(note).text)
        vkey = ledger.verifier_for(cp.origin).string()
        if as_json:
            _emit(
                {
                    "ledger": ledger.location,
                    "origin": cp.origin,
                    "size": cp.size,
                    "verifier_key": vkey,
                    "home": str(ledger.home.path),
                }
            )
            return
        from modelchain.log.block import n_blocks

        click.echo(f"Ledger {ledger.location} (log {cp.origin}, {n_blocks(cp.size)})")
        click.echo(f"Operator key: {ledger.home.key_path}")
        click.echo(f"Verifier key: {vkey}")


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option("--name", help="Model name (default: PATH's base name).")
@click.option(
    "--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata to record (repeatable)."
)
@provenance_options
@hashing_options
@click.option(
    "--key",
    "verifier_keys",
    multiple=True,
    metavar="VKEY",
    envvar="MODELCHAIN_VERIFIER_KEY",
    help="With a server ledger (https://...): the verifier key its checkpoints must be signed "
    "with (default: the key pinned for its log). Token: MODELCHAIN_TOKEN.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Append a new version even when these bytes already are the newest version of "
    "the name (by default nothing is appended and the existing version is named).",
)
@ledger_option
@json_option
def register(
    path: str,
    name: str | None,
    meta: Sequence[str],
    force: bool,
    verifier_keys: Sequence[str],
    sign_keys: Sequence[str],
    password_file: str | None,
    provenance_file: str | None,
    data: Sequence[str],
    params: Sequence[str],
    metrics: Sequence[str],
    no_provenance: bool,
    ignore: Sequence[str],
    follow_symlinks: bool,
    allow_outside: bool,
    as_json: bool,
) -> None:
    """Hash a model file or directory and append a block for it.

    Library versions and the git commit (when PATH is in a git checkout) are recorded as
    provenance unless --no-provenance; --data, --param, --metric and --provenance add to it.

    \b
    Examples:
      modelchain register model.joblib
      modelchain register models/llm/ --name llm --meta team=nlp --ignore '*.tmp'
      modelchain register model.joblib --sign-key alice --data train.csv \\
          --param C=1.0 --metric accuracy=0.97
      modelchain register model.joblib --provenance statement.intoto.json
      MODELCHAIN_TOKEN=... modelchain register model.joblib --ledger https://ledger.example:8443
    """
    from modelchain.claims.provenance import Provenance, collect, parse_assignments
    from modelchain.core.errors import UsageError
    from modelchain.log.home import Home

    metadata: dict[str, str] = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta takes KEY=VALUE, got {item!r}")
        metadata[key] = value
    # everything that can be refused is checked before the model is hashed or the ledger touched
    hyper, measured = parse_assignments(params, "--param"), parse_assignments(metrics, "--metric")
    base = Provenance.load(provenance_file) if provenance_file is not None else None
    keys = _private_keys(sign_keys, password_file, Home().path)
    automatic = not no_provenance
    provenance = collect(
        path, base=base, data=data, params=hyper, metrics=measured, automatic=automatic
    )
    with _open_ledger(create=True, keys=verifier_keys) as ledger, _bar() as bar:
        block = ledger.register(
            path,
            progress=bar,
            name=name,
            metadata=metadata,
            ignore=_ignores(ignore),
            follow_symlinks=follow_symlinks,
            allow_outside=allow_outside,
            provenance=provenance,
            sign_keys=keys,
            force=force,
        )
        if as_json:
            _emit(
                {
                    "registered": True,
                    "appended": not block.existing,
                    "already_registered": block.existing,
                    "ledger": ledger.location,
                    "block": block.to_dict(),
                }
            )
            return
        if block.existing:
            click.echo(
                f"Already registered as {block.name} v{block.version} (block {block.index}): "
                f"sha256 {block.model_hash}; nothing appended (--force appends a new version)"
            )
            return
        files = f", {len(block.manifest.files)} files" if block.manifest is not None else ""
        click.echo(
            f"Registered {block.label}: sha256 {block.model_hash} ({_fmt_size(block.size)}{files})"
        )
        for signature in block.signatures:
            click.echo(f"Signed by key {signature.keyid[:16]} ({signature.key_type})")


def _with_verdict(command: Callable[..., None]) -> Callable[..., None]:
    """`verify --json` says `"verified": false` in every failure too, not only `error`, so a
    script can read one field whatever happened."""
    import functools

    from modelchain.core.errors import ModelchainError

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except ModelchainError as exc:
            details = getattr(exc, "details", None) or {}
            exc.details = {"verified": False, **details}  # type: ignore[attr-defined]
            raise

    return wrapper


@cli.command()
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--name", help="Registered name to check against (default: PATH's base name).")
@click.option(
    "--load",
    "test_load",
    is_flag=True,
    help="Then test-load the model in a child process with the restricted unpickler.",
)
@click.option(
    "--format",
    "load_format",
    type=click.Choice(["joblib", "pickle", "skops", "safetensors", "onnx"]),
    help="With --load: the model's format, when neither its name nor its bytes say.",
)
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="With --load, also allow this import (pkg.mod.Name or pkg.mod.*); repeatable.",
)
@click.option(
    "--signer",
    "signers",
    multiple=True,
    metavar="KEY",
    help="Require a valid registration signature by this key: a key name, a full key ID "
    "(or 32+ hex digits), a public key file given as a path (./alice.pub) or an Ed25519 "
    "verifier key; repeatable (all are required).",
)
@click.option(
    "--signature",
    metavar="SIG",
    help="Check PATH against this OpenSSF model-signing bundle (needs --public-key); "
    "the ledger is then checked only if --ledger or MODELCHAIN_LEDGER is given.",
)
@click.option(
    "--public-key",
    "public_key",
    metavar="PUB",
    help="Public key for --signature: a PEM file given as a path (./signer.pub) or a key "
    "name from `modelchain key list`.",
)
@click.option(
    "--ignore-paths",
    "ignore_paths",
    multiple=True,
    metavar="PATH",
    help="With --signature, also leave out this file or directory (repeatable).",
)
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    metavar="N",
    help="Check against version N of the name instead of the newest (the answer says "
    "whether N is the newest).",
)
@click.option(
    "--full",
    is_flag=True,
    help="Audit every block of the ledger too, instead of proving the name's newest version "
    "by the signed index (O(log n)).",
)
@key_option
@hashing_options
@ledger_option
@json_option
@_with_verdict
def verify(paths: Sequence[str], **options: Any) -> None:
    """Check each PATH against the newest registered version of its name, proven by the
    ledger's signed index and checkpoint (--full: audit the whole ledger instead).

    Exit 1 names what differs: an older version it matches, the changed, added or removed
    files of a directory, the changed tensors of a safetensors file.

    Several PATHs are each checked against their own base name (--name, --version and
    --signature take one PATH); every PATH is checked even when one fails, and the exit
    status is the worst. With --json, one PATH gives an object, several a list.

    \b
    Examples:
      modelchain verify model.joblib
      modelchain verify encoder.joblib decoder.joblib tokenizer.json
      modelchain verify deploy/model.joblib --name model.joblib --load
      modelchain --ledger blockchain_data.json verify iris_model.joblib --json
      modelchain verify model.joblib --signer alice     # or a key ID, .pub file, verifier key
      modelchain verify models/llm --signature llm.sig --public-key signer.pub
    """
    from modelchain.core.errors import ModelchainError, UsageError, command_line_text

    as_json = options["as_json"]
    if len(paths) == 1:
        out = _verify_path(paths[0], **options)
        if as_json:
            _emit(out)
        return
    if any(options[o] is not None for o in ("name", "version", "signature")):
        raise UsageError("--name, --version and --signature check one PATH: give one")
    results: list[dict[str, Any]] = []
    worst = 0
    for path in paths:
        try:
            results.append(_verify_path(path, **options))
        except ModelchainError as exc:
            worst = max(worst, exc.exit_code)
            details = getattr(exc, "details", None) or {}
            results.append(
                {
                    "path": path,
                    "verified": False,
                    "error": command_line_text(exc),
                    "exit_code": exc.exit_code,
                }
                | {k: v for k, v in details.items() if k not in ("path", "verified")}
            )
            if not as_json:
                click.echo(f"modelchain: error: {command_line_text(exc)}", err=True)
    if as_json:
        _emit(results)
    if worst:
        sys.exit(worst)


def _verify_path(
    path: str,
    name: str | None,
    version: int | None,
    test_load: bool,
    load_format: str | None,
    trusted: Sequence[str],
    signers: Sequence[str],
    signature: str | None,
    public_key: str | None,
    ignore_paths: Sequence[str],
    keys: Sequence[str],
    ignore: Sequence[str],
    follow_symlinks: bool,
    allow_outside: bool,
    as_json: bool,
    full: bool = False,
) -> dict[str, Any]:
    """One PATH of `verify`: the checks are `modelchain.use.check`'s; this renders them."""
    from modelchain.core.errors import UsageError
    from modelchain.use import check

    if load_format is not None and not test_load:
        raise UsageError("--format names the format for --load: give --load too")
    request = check.Check(
        path,
        name=name,
        version=version,
        signers=signers,
        keys=_verifiers(keys),
        ignore=_ignores(ignore),
        follow_symlinks=follow_symlinks,
        allow_outside=allow_outside,
        signature=signature,
        public_key=_bundle_key(signature, public_key, ignore_paths),
        ignore_paths=ignore_paths,
        test_load=test_load,
        load_format=load_format,
        trusted=trusted,
        full=full,
    )
    bundle_only = signature is not None and not _ledger_given()
    if bundle_only and test_load:
        raise UsageError("--load checks against the ledger: give --ledger too")
    with _bar() as bar:
        result = check.check(
            request,
            None if bundle_only else _open_ledger,
            on_bundle=None if as_json else _echo_bundle,
            progress=bar,
        )
    out = result.as_dict()
    if as_json or result.verification is None:
        return out
    verified = result.verification
    click.echo(
        f"OK: {path} matches {verified.block.label}, "
        f"registered {_fmt_time(verified.block.timestamp)}"
    )
    if version is not None:
        click.echo(
            f"v{version} is the newest version of {verified.name}"
            if verified.is_newest
            else f"Not the newest version: {verified.name} is at v{verified.newest_version}"
        )
    from modelchain.log.block import n_blocks

    if verified.audit.index_proven:  # proven by the index: O(log n), no scan
        click.echo(
            f"Proved the newest version by the signed index and checkpoint of "
            f"{n_blocks(verified.audit.size)} (log {verified.audit.origin}); "
            "`modelchain audit` checks every entry"
        )
    elif verified.audit.proofs_only:  # a server's ledger: proven, not audited in full
        click.echo(
            f"Proved into the signed checkpoint of {n_blocks(verified.audit.size)} "
            f"(log {verified.audit.origin}); `modelchain audit` checks every entry"
        )
    else:
        click.echo(
            f"Ledger valid: {n_blocks(verified.audit.size)}, "
            f"checkpoint signed by {verified.audit.origin}"
        )
    if signers:
        signed = ", ".join(f"{s.keyid[:16]} ({s.key_type})" for s in verified.block.signatures)
        click.echo(f"Registration signed by: {signed}")
    if result.load is not None:
        click.echo(f"Test load in a child process: {result.load.get('format')} model loaded")
    return out


@cli.command()
@click.option(
    "--full",
    is_flag=True,
    help="Check every block and rebuild the index from them, not only what was appended "
    "since the last audit.",
)
@key_option
@ledger_option
@json_option
def audit(full: bool, keys: Sequence[str], as_json: bool) -> None:
    """Check the blocks, the Merkle tree, the index, the signed checkpoint, and against
    rollback.

    After a first audit, the next one here checks only the blocks appended since (their
    tree proven to extend the audited one, the index update proven). --full checks every
    block again and rebuilds the index from them: run it now and then, since a block
    changed among those audited before is only caught that way. On a large ledger it checks
    blocks in one worker process per CPU (MODELCHAIN_AUDIT_WORKERS sets how many; 0: none).

    \b
    Examples:
      modelchain audit
      modelchain audit --full
      MODELCHAIN_AUDIT_WORKERS=1 modelchain audit --full   # leave a CPU free
      modelchain audit --key "$(cat operator.vkey)"   # an auditor without the operator key
    """
    from modelchain.cli.progress import Progress

    with _open_ledger() as ledger, Progress(None, "auditing", unit="blocks") as bar:
        report = ledger.audit(keys=_verifiers(keys), full=full, progress=bar)
        bar.close()
        from modelchain.log.block import n_blocks

        if as_json:
            _emit(report.as_dict())
            return
        import base64

        click.echo(f"Ledger valid: {report.location}")
        click.echo(f"  log:        {report.origin}")
        click.echo(f"  size:       {n_blocks(report.size)}")
        click.echo(f"  root hash:  {base64.b64encode(report.root_hash).decode()}")
        click.echo(f"  checked:    {report.checked}")
        if report.previously_trusted is None:
            click.echo("  trust:      first checkpoint accepted for this log")
        else:
            click.echo(
                "  trust:      extends the checkpoint accepted before "
                f"({n_blocks(report.previously_trusted)})"
            )
        if not report.indexed:
            click.echo(
                "  index:      none yet (a ledger made before the index); run "
                "`modelchain migrate` to sign it"
            )


@cli.command()
@ledger_option
@json_option
def migrate(as_json: bool) -> None:
    """Bring a ledger made by an older modelchain up to date: its database schema, and a
    new signed checkpoint of the same blocks that carries their index of newest versions
    (older checkpoints stay valid). Run where the ledger lives, with the operator key.

    \b
    Examples:
      modelchain migrate
      modelchain migrate --ledger postgresql://db.internal/registry?schema=ledger
    """
    from modelchain.core.errors import LedgerUnreadable, UsageError
    from modelchain.ledgers import Ledger
    from modelchain.ledgers.local import LocalLedger
    from modelchain.ledgers.locations import resolve_location
    from modelchain.log.block import n_blocks

    state = click.get_current_context().ensure_object(_State)
    location = resolve_location(state.ledger)
    if location.lower().startswith(("http://", "https://")):
        raise UsageError(
            f"{location} is a server's ledger: migrate it where it is stored (run "
            "`modelchain migrate --ledger LOCATION` with the server's ledger and operator key)"
        )
    schema = False
    try:
        ledger = Ledger.open(location, home=_home())
    except LedgerUnreadable as exc:
        if exc.way_out is None or exc.way_out.command != ("migrate",):
            raise
        # a database of an older schema: opening it to create migrates the schema
        ledger = Ledger.open(location, home=_home(), create=True)
        schema = True
    with ledger:
        if not isinstance(ledger, LocalLedger):
            raise UsageError(f"{ledger.location} is not a ledger this command can migrate")
        note, signed = ledger.migrate()
        size = ledger.signed_size()
        if signed:
            message = f"Signed the index of {n_blocks(size)}: a new checkpoint of the same tree"
        elif schema:
            message = "Brought the database schema up to date; the index was signed already"
        else:
            message = f"Already migrated: the checkpoint of {n_blocks(size)} signs the index"
        if as_json:
            _emit(
                {
                    "ledger": ledger.location,
                    "migrated": signed,
                    "schema_migrated": schema,
                    "size": size,
                    "checkpoint": note,
                    "message": message,
                }
            )
            return
        click.echo(message)


@cli.command()
@click.option("--name", help="Only blocks of this model name.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N blocks.")
@key_option
@ledger_option
@json_option
def log(name: str | None, limit: int | None, keys: Sequence[str], as_json: bool) -> None:
    """List blocks, oldest first (not an audit: run `modelchain audit` for that).

    From a server, each block shown is proven into its signed checkpoint.

    \b
    Examples:
      modelchain log --name iris_model.joblib
      modelchain log --limit 10 --ledger https://ledger.example:8443 --json
    """
    with _open_ledger(keys=keys) as ledger:
        if name is not None:
            blocks = [ledger.block(i) for i in ledger.store.find(name=name)]
        else:
            start = max(0, len(ledger) - limit) if limit else 0
            blocks = list(ledger.blocks(start))
        if limit:
            blocks = blocks[-limit:]
        if as_json:
            _emit([b.to_dict() for b in blocks])
            return
        if not blocks:
            click.echo("(no blocks)")
            return
        click.echo(
            f"{'INDEX':>5}  {'REGISTERED':20}  {'KIND':9}  {'SIZE':>10}  {'SHA256':16}  NAME"
        )
        for b in blocks:
            click.echo(
                f"{b.index:>5}  {_fmt_time(b.timestamp):20}  {b.kind:9}  {_fmt_size(b.size):>10}  "
                f"{b.model_hash[:16]}  {b.name} v{b.version}"
            )


@cli.command("hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str, allow_dash=True))
@click.option("--manifest", is_flag=True, help="For a directory, list every file's digest too.")
@hashing_options
@json_option
def hash_(
    paths: Sequence[str],
    manifest: bool,
    ignore: Sequence[str],
    follow_symlinks: bool,
    allow_outside: bool,
    as_json: bool,
) -> None:
    """Print models' digests (a file: its SHA-256, as sha256sum prints it; - reads stdin).

    Like sha256sum, every PATH is hashed even when one cannot be; the exit status is then 2.
    With --json, one PATH gives an object, several a list.

    \b
    Examples:
      modelchain hash model.joblib models/llm/
      cat model.joblib | modelchain hash -
    """
    from modelchain.core.errors import ModelchainError, command_line_text

    results: list[dict[str, Any]] = []
    failed: ModelchainError | None = None
    for path in paths:
        try:
            results.append(_hash_one(path, ignore, follow_symlinks, allow_outside))
        except ModelchainError as exc:
            if len(paths) == 1:
                raise
            failed = exc
            results.append(
                {"path": path, "error": command_line_text(exc), "exit_code": exc.exit_code}
            )
            if not as_json:
                click.echo(f"modelchain: error: {command_line_text(exc)}", err=True)
            continue
        if not as_json:
            _print_digest(results[-1], manifest)
    if as_json:
        _emit(results[0] if len(paths) == 1 else results)
    if failed is not None:
        sys.exit(max(r.get("exit_code", 0) for r in results))


def _hash_one(
    path: str, ignore: Sequence[str], follow_symlinks: bool, allow_outside: bool
) -> dict[str, Any]:
    """One digest as the JSON `hash` prints: a file or folder, or standard input for `-`."""
    from modelchain.fs.digest import digest_path, manifest_to_json

    if path == "-":
        import hashlib

        h, size = hashlib.sha256(), 0
        stdin = sys.stdin.buffer
        while chunk := stdin.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
        return {"path": "-", "kind": "file", "sha256": h.hexdigest(), "size": size}
    with _bar() as bar:
        d = digest_path(
            path,
            ignore=_ignores(ignore),
            follow_symlinks=follow_symlinks,
            allow_outside=allow_outside,
            progress=bar,
        )
    out: dict[str, Any] = {"path": path, "kind": d.kind, "sha256": d.sha256, "size": d.size}
    if d.manifest is not None:
        out["manifest"] = manifest_to_json(d.manifest)
    return out


def _print_digest(result: dict[str, Any], manifest: bool) -> None:
    path = result["path"]
    if result["kind"] == "file":
        click.echo(f"{result['sha256']}  {path}")
        return
    if manifest and "manifest" in result:
        for entry in result["manifest"]:
            click.echo(f"{entry['sha256']}  {entry['path']}")
    click.echo(f"{result['sha256']}  {path.rstrip('/')}/")


@cli.command()
@click.option("--verifier-key", is_flag=True, help="Print the verifier key of this log instead.")
@key_option
@ledger_option
@json_option
def checkpoint(verifier_key: bool, keys: Sequence[str], as_json: bool) -> None:
    """Print the newest signed checkpoint (a C2SP signed note).

    A server's checkpoint is printed only once its signature and its consistency with the
    one accepted before are checked.

    \b
    Examples:
      modelchain checkpoint --verifier-key
      modelchain checkpoint --ledger https://ledger.example:8443 --json
    """
    from modelchain.core.note import Checkpoint, parse_note

    with _open_ledger(keys=keys) as ledger:
        note = ledger.checkpoint()
        cp = Checkpoint.parse(parse_note(note).text)
        if verifier_key:
            vkey = ledger.verifier_for(cp.origin).string()
            _emit({"verifier_key": vkey}) if as_json else click.echo(vkey)
            return
        if as_json:
            import base64

            _emit(
                {
                    "origin": cp.origin,
                    "size": cp.size,
                    "root_hash": base64.b64encode(cp.root_hash).decode(),
                    "note": note,
                }
            )
            return
        click.echo(note, nl=False)


@cli.group(context_settings=CONTEXT)
def note() -> None:
    """Work with C2SP signed notes (checkpoints of any transparency log)."""


@note.command("verify")
@click.option(
    "--key", "keys", multiple=True, required=True, metavar="VKEY", help="Verifier key; repeatable."
)
@click.argument("file", type=click.Path(path_type=str, allow_dash=True))
@json_option
def note_verify(keys: Sequence[str], file: str, as_json: bool) -> None:
    """Verify a signed note (FILE, or - for stdin) against one or more verifier keys.

    \b
    Example:
      modelchain checkpoint > cp.txt
      modelchain note verify --key "$(modelchain checkpoint --verifier-key)" cp.txt
    """
    from modelchain.core.errors import InputError
    from modelchain.core.note import open_note
    from modelchain.fs.inputs import read_small_file

    limit = 1 << 20  # text and at most 100 signature lines: an honest note is far smaller
    if file == "-":
        raw = sys.stdin.buffer.read(limit + 1)
        if len(raw) > limit:
            raise InputError("standard input: too large for a signed note (limit 1 MiB)")
    else:  # a regular file only (a FIFO would block), read within the limit
        raw = read_small_file(file, limit=limit, what="signed note")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {file}: {exc}") from None
    result = open_note(text, _verifiers(keys))
    names = [v.name for v in result.verified_by]
    if as_json:
        _emit({"verified": True, "verified_by": names, "text": result.text})
        return
    click.echo(f"Verified by: {', '.join(names)}")
    click.echo(result.text, nl=False)


@cli.group(context_settings=CONTEXT)
def prove() -> None:
    """Print RFC 9162 Merkle proofs for the ledger's signed tree."""


def _print_proof(fields: dict[str, int | bytes], proof: Sequence[bytes], as_json: bool) -> None:
    """A proof as JSON, or as `key value` lines (hashes in base64, as in checkpoints)."""
    import base64

    def show(value: int | bytes) -> int | str:
        return base64.b64encode(value).decode() if isinstance(value, bytes) else value

    out = {key: show(value) for key, value in fields.items()}
    out["proof"] = [base64.b64encode(h).decode() for h in proof]
    if as_json:
        _emit(out)
        return
    for key, value in out.items():
        for item in value if isinstance(value, list) else [value]:
            click.echo(f"{key} {item}")


@prove.command("inclusion")
@click.argument("index", type=click.IntRange(min=0))
@click.option("--size", type=click.IntRange(min=1), help="Tree size (default: the signed size).")
@key_option
@ledger_option
@json_option
def prove_inclusion(index: int, size: int | None, keys: Sequence[str], as_json: bool) -> None:
    """Inclusion proof of block INDEX."""
    from modelchain.core import merkle

    with _open_ledger(keys=keys) as ledger:
        size = size or ledger.signed_size()
        proof = ledger.inclusion_proof(index, size)
        leaf = ledger.leaf_hash(index)
        root = ledger.root_hash(size)
        merkle.verify_inclusion(index, size, leaf, proof, root)
        _print_proof(
            {"index": index, "tree_size": size, "leaf_hash": leaf, "root_hash": root},
            proof,
            as_json,
        )


@prove.command("consistency")
@click.argument("old_size", type=click.IntRange(min=0))
@click.argument("new_size", type=click.IntRange(min=0), required=False)
@key_option
@ledger_option
@json_option
def prove_consistency(
    old_size: int, new_size: int | None, keys: Sequence[str], as_json: bool
) -> None:
    """Consistency proof from OLD_SIZE to NEW_SIZE (default: the signed size)."""
    from modelchain.core import merkle

    with _open_ledger(keys=keys) as ledger:
        new_size = ledger.signed_size() if new_size is None else new_size
        proof = ledger.consistency_proof(old_size, new_size)
        old_root, new_root = ledger.root_hash(old_size), ledger.root_hash(new_size)
        merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
        _print_proof(
            {
                "old_size": old_size,
                "new_size": new_size,
                "old_root": old_root,
                "new_root": new_root,
            },
            proof,
            as_json,
        )


@cli.command("export")
@click.argument("destination", type=click.Path(path_type=str))
@key_option
@ledger_option
@json_option
def export_(destination: str, keys: Sequence[str], as_json: bool) -> None:
    """Copy the audited ledger to DESTINATION (*.json: the seed format; postgresql://...: a
    PostgreSQL schema; else SQLite).

    \b
    Example:
      modelchain export backup.json
      modelchain export 'postgresql://ml@db.example:5432/registry?schema=team_a'
    """
    from modelchain.ledgers.copy import copy_ledger

    with _open_ledger() as source:
        report = copy_ledger(source, destination, keys=_verifiers(keys))
        _report_copy(report, source.location, destination, as_json)


@cli.command("import")
@click.argument("source", type=click.Path(path_type=str))
@key_option
@ledger_option
@json_option
def import_(source: str, keys: Sequence[str], as_json: bool) -> None:
    """Copy the audited ledger at SOURCE into this (empty) ledger."""
    from modelchain.ledgers import Ledger
    from modelchain.ledgers.copy import copy_ledger
    from modelchain.ledgers.locations import resolve_location

    target = resolve_location(click.get_current_context().ensure_object(_State).ledger)
    with Ledger.open(source, home=_home()) as src:
        report = copy_ledger(src, target, keys=_verifiers(keys))
        _report_copy(report, src.location, target, as_json)


def _report_copy(report: Any, source: str, target: str, as_json: bool) -> None:
    from modelchain.ledgers.locations import display_location
    from modelchain.log.block import n_blocks

    target = display_location(target)  # a database URL is shown without its password
    if as_json:
        _emit({"copied": report.size, "from": source, "to": target, "origin": report.origin})
    else:
        click.echo(
            f"Copied {n_blocks(report.size)} of log {report.origin} from {source} to {target}"
        )


@cli.command()
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="Also allow this import (pkg.mod.Name or pkg.mod.*); repeatable.",
)
@json_option
def scan(paths: Sequence[str], trusted: Sequence[str], as_json: bool) -> None:
    """Scan model files (or every file of a directory) without loading them.

    \b
    Examples:
      modelchain scan model.joblib
      modelchain scan models/ --json
      modelchain scan model.pkl --trust mypkg.layers.Dense

    Data files (safetensors, JSON, text, PNG/JPEG, GGUF, ONNX) are recognised by a strict
    parse and reported as "data"; a file that parses as two formats is refused. Exit 0 only
    if every file was parsed to its end and every import is allowed.
    """
    from modelchain.use.scan import scan_path

    results = [scan_path(path, trusted=trusted) for path in paths]
    if as_json:
        _emit(results[0].as_dict() if len(paths) == 1 else [r.as_dict() for r in results])
    else:
        for path, result in zip(paths, results, strict=True):
            _print_scan(path, result)
    if not all(result.ok for result in results):
        sys.exit(1)


def _print_scan(path: str, result: Any) -> None:
    """The table `scan` prints for one PATH: a line per file, its imports and findings."""
    from modelchain.use.scan import DirectoryScan

    reports = result.reports if isinstance(result, DirectoryScan) else [result]
    for finding in getattr(result, "findings", []) if isinstance(result, DirectoryScan) else []:
        click.echo(f"{path}: {finding}")
    width = max([len("PATH")] + [len(r.path) for r in reports])
    fwidth = max([len("FORMAT")] + [len(r.format) for r in reports])
    click.echo(f"{'PATH':<{width}}  {'FORMAT':<{fwidth}}  VERDICT")
    for report in reports:
        detail = (
            "holds no code"
            if report.verdict == "data"
            else f"{len(report.imports)} imports, "
            f"parsed {report.parsed_bytes} of {report.total_bytes} bytes"
        )
        click.echo(
            f"{report.path:<{width}}  {report.format:<{fwidth}}  {report.verdict} ({detail})"
        )
        for record in report.imports:
            mark = "allowed" if record.allowed else "REFUSED"
            click.echo(f"  {mark:8} {record.module}.{record.name}  ({record.reason})")
        for finding in report.findings:
            click.echo(f"  finding: {finding}")


@cli.command()
@click.argument("ref", metavar="NAME[@VERSION]")
@ledger_option
@json_option
def show(ref: str, as_json: bool) -> None:
    """Print one registration: digest, manifest summary, provenance, signatures.

    Each signature is checked against the block's claim (valid / INVALID). This reads one
    block; run `modelchain audit` or `verify` to check the whole ledger.

    \b
    Examples:
      modelchain show iris_model.joblib
      modelchain show iris_model.joblib@1 --json
    """
    from modelchain.claims.claim import registration_view
    from modelchain.claims.provenance import provenance_lines
    from modelchain.log.block import parse_ref

    name, version = parse_ref(ref)
    with _open_ledger() as ledger:
        block = ledger.registration(name, version)
        view = registration_view(block, ledger.home.path, ledger.store.origin())
    if as_json:
        _emit(view)
        return
    click.echo(f"{block.label}")
    click.echo(f"  registered:  {view['registered']}")
    click.echo(f"  sha256:      {view['sha256']}")
    click.echo(f"  kind:        {view['kind']}, {_fmt_size(view['size'])}")
    if view["manifest"] is not None:
        click.echo(f"  manifest:    {view['manifest']['files']} files")
    for key, value in view["metadata"].items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) > 200:
            text = text[:200] + "…"
        click.echo(f"  metadata:    {key}={text}")
    if view["provenance"] is None:
        click.echo("Provenance: none recorded")
    else:
        click.echo(f"Provenance ({view['provenance']['predicateType']}):")
        for line in provenance_lines(view["provenance"]):
            click.echo(f"  {line}")
    if not view["signatures"]:
        click.echo("Signatures: none")
    else:
        click.echo("Signatures:")
        for sig in view["signatures"]:
            status = "valid" if sig["valid"] else "INVALID"
            named = f"  ({sig['key_name']})" if "key_name" in sig else ""
            if not sig["bound"]:
                named += "  [unbound: names no log or version]"
            click.echo(f"  {status:8} {sig['key_type']:8} {sig['keyid']}{named}")
            if not sig["valid"]:
                click.echo(f"           {sig['problem']}")


@cli.group(context_settings=CONTEXT)
def key() -> None:
    """Manage registrant signing keys (kept in MODELCHAIN_HOME/keys/).

    \b
    Example:
      modelchain key generate alice
      modelchain register model.joblib --sign-key alice
      modelchain verify model.joblib --signer alice
    """


def _key_view(stored: Any) -> dict[str, Any]:
    public = stored.public
    return {
        "name": stored.name,
        "key_type": public.kind,
        "keyid": public.key_id,
        "private_key": str(stored.private_path) if stored.private_path.exists() else None,
        "public_key": public.pem().decode(),
        "verifier_key": public.verifier_string(stored.name),
    }


def _print_key(view: dict[str, Any]) -> None:
    click.echo(f"Key {view['name']} ({view['key_type']})")
    click.echo(f"  key ID:       {view['keyid']}")
    click.echo(f"  private key:  {view['private_key'] or '(not here: public key only)'}")
    if view["verifier_key"]:
        click.echo(f"  verifier key: {view['verifier_key']}")
    else:
        click.echo("  public key:")
        for line in view["public_key"].splitlines():
            click.echo(f"    {line}")


@key.command("generate")
@click.argument("name")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["ed25519", "p256", "p384", "p521"]),
    default="ed25519",
    show_default=True,
    help="Key type (ECDSA curves sign with SHA-256/384/512).",
)
@click.option(
    "--password-file",
    metavar="FILE",
    help="Encrypt the private key with the password in FILE (default: "
    "MODELCHAIN_KEY_PASSWORD if set, else unencrypted).",
)
@json_option
def key_generate(name: str, kind: str, password_file: str | None, as_json: bool) -> None:
    """Create a key pair NAME: keys/NAME.pem (private, mode 0600) and keys/NAME.pub.

    \b
    Examples:
      modelchain key generate alice
      modelchain key generate ci --type p256 --password-file ci.pass
    """
    from modelchain.claims.keys import PASSWORD_ENV, KeyRing
    from modelchain.log.home import Home

    password = _read_password(password_file)
    if password is None and os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV].encode()
    stored = KeyRing(Home().path).generate(name, kind, password)  # type: ignore[arg-type]
    view = _key_view(stored)
    view["encrypted"] = password is not None
    if as_json:
        _emit(view)
        return
    _print_key(view)


@key.command("list")
@json_option
def key_list(as_json: bool) -> None:
    """List the keys in MODELCHAIN_HOME/keys/."""
    from modelchain.claims.keys import KeyRing
    from modelchain.log.home import Home

    views = [_key_view(k) for k in KeyRing(Home().path)]
    if as_json:
        _emit(views)
        return
    if not views:
        click.echo("(no keys: create one with `modelchain key generate NAME`)")
        return
    click.echo(f"{'NAME':20}  {'TYPE':8}  KEY ID")
    for v in views:
        click.echo(f"{v['name']:20}  {v['key_type']:8}  {v['keyid']}")


@key.command("show")
@click.argument("name")
@click.option("--pem", is_flag=True, help="Print only the public key as PEM (to share it).")
@json_option
def key_show(name: str, pem: bool, as_json: bool) -> None:
    """Show a key's ID, type, and public key (a verifier key string for Ed25519).

    \b
    Examples:
      modelchain key show alice
      modelchain key show alice --pem > alice.pub
    """
    from modelchain.claims.keys import KeyRing
    from modelchain.log.home import Home

    view = _key_view(KeyRing(Home().path).get(name))
    if as_json:
        _emit(view)
    elif pem:
        click.echo(view["public_key"], nl=False)
    else:
        _print_key(view)


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=str),
    help="Run in this (new or empty) directory instead of a temporary one, and keep it.",
)
def demo(directory: str | None) -> None:
    """Tell the seed story end to end: train, register, verify, and four attacks."""
    from modelchain.use.seed import run_demo

    ok = run_demo(directory)
    sys.exit(0 if ok else 1)


# -- OpenSSF model-signing bundles ----------------------------------------------------------


@cli.command()
@click.argument("model", type=click.Path(path_type=str))
@click.option(
    "--private-key",
    "private_key",
    required=True,
    metavar="KEY",
    help="PEM private key (EC P-256/P-384/P-521 or Ed25519) given as a path (./signer.pem), "
    "or a key name in MODELCHAIN_HOME.",
)
@click.option(
    "--password-file",
    type=click.Path(path_type=str),
    help="File whose first line is the key's password (else MODELCHAIN_KEY_PASSWORD).",
)
@click.option(
    "--signature",
    default="model.sig",
    show_default=True,
    metavar="PATH",
    help="Where to write the bundle (inside the model directory it is left out of the hash).",
)
@click.option(
    "--ignore-paths",
    "ignore_paths",
    multiple=True,
    metavar="PATH",
    help="Leave this file or directory of the model out (repeatable; recorded in the bundle).",
)
@click.option(
    "--ignore-git-paths/--no-ignore-git-paths",
    default=True,
    show_default=True,
    help="Leave out .git, .gitattributes, .github and .gitignore at the model's root.",
)
@click.option(
    "--hash",
    "hash_type",
    type=click.Choice(["sha256", "blake2b", "blake3"]),
    default="sha256",
    show_default=True,
    help="Digest of each file or shard (model_signing's CLI verifies only sha256 files).",
)
@click.option(
    "--shard-size",
    metavar="BYTES",
    help="Hash files in shards of this size (e.g. 256M), in parallel: faster on big files.",
)
@click.option("--files", "whole_files", is_flag=True, help="One digest per file (the default).")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Sign symbolic links inside the model as the files they point to.",
)
@click.option(
    "--allow-outside",
    is_flag=True,
    help="With --follow-symlinks, also follow links that leave the model directory.",
)
@json_option
def sign(
    model: str,
    private_key: str,
    password_file: str | None,
    signature: str,
    ignore_paths: Sequence[str],
    ignore_git_paths: bool,
    hash_type: str,
    shard_size: str | None,
    whole_files: bool,
    follow_symlinks: bool,
    allow_outside: bool,
    as_json: bool,
) -> None:
    """Sign MODEL (file or directory) into an OpenSSF model-signing bundle.

    The bundle (Sigstore bundle, DSSE, in-toto statement) verifies with
    `modelchain verify MODEL --signature SIG --public-key PUB` and, for EC keys, with
    `model_signing verify key`.

    \b
    Examples:
      modelchain sign models/llm --private-key signer.pem --signature llm.sig
      modelchain sign model.joblib --private-key alice --password-file pw.txt
      modelchain sign models/llm --private-key signer.pem --shard-size 256M --json
    """
    from modelchain.claims.bundle import parse_size, sign_model
    from modelchain.claims.keys import resolve_private_key
    from modelchain.core.errors import UsageError
    from modelchain.log.home import Home

    if shard_size is not None and whole_files:
        raise UsageError("--shard-size and --files exclude each other")
    size = parse_size(shard_size) if shard_size is not None else None
    password = _read_password(password_file)
    key = resolve_private_key(private_key, Home().path, password)
    with _bar() as bar:
        result = sign_model(
            model,
            key,
            signature=signature,
            ignore_paths=ignore_paths,
            ignore_git_paths=ignore_git_paths,
            hash_type=hash_type,
            shard_size=size,
            allow_symlinks=follow_symlinks,
            allow_outside=allow_outside,
            progress=bar,
        )
    if as_json:
        _emit(result.as_dict())
        return
    click.echo(
        f"Signed {model} ({_files(result.files)}, {_fmt_size(result.size)}): {result.signature}"
    )
    click.echo(f"  subject sha256 {result.statement.digest}")
    click.echo(f"  key {result.key.key_id[:16]} ({result.key.kind})")


def _bundle_key(signature: str | None, public_key: str | None, ignore_paths: Sequence[str]) -> Any:
    """`verify --signature SIG --public-key PUB`: the key of the bundle check (None without)."""
    from modelchain.core.errors import UsageError

    if signature is None and public_key is None:
        if ignore_paths:
            raise UsageError("--ignore-paths goes with --signature and --public-key")
        return None
    if signature is None or public_key is None:
        raise UsageError("--signature and --public-key go together")
    from modelchain.claims.keys import public_key_for
    from modelchain.log.home import Home

    return public_key_for(public_key, Home().path)


def _files(n: int) -> str:
    return "1 file" if n == 1 else f"{n} files"


def _ledger_given() -> bool:
    """Whether a ledger was named (--ledger or MODELCHAIN_LEDGER) rather than defaulted."""
    return click.get_current_context().ensure_object(_State).ledger is not None


def _echo_bundle(result: Any) -> None:
    s = result.statement.serialization
    how = s.method if s.method == "files" else f"shards of {s.shard_size} bytes"
    click.echo(
        f"OK: {result.model} matches signature {result.signature} "
        f"({_files(result.files)}, {_fmt_size(result.size)}, {s.hash_type} {how})"
    )
    click.echo(f"Signed by key {result.key.key_id[:16]} ({result.key.kind})")
    if result.not_covered:
        shown = ", ".join(result.not_covered[:5])
        click.echo(f"Note: empty files are not covered by a sharded bundle: {shown}")


# -- the HTTP service ---------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes."
)
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host.")
@click.option(
    "--max-body",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(1024, 64 << 20),
    help="Largest request body, in bytes.",
)
@click.option(
    "--max-batch",
    default=256,
    show_default=True,
    type=click.IntRange(1, 10000),
    help="Most registrations appended under one signed checkpoint.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@ledger_option
def serve(
    host: str,
    port: int,
    workers: int,
    allow_remote: bool,
    max_body: int,
    max_batch: int,
    log_level: str,
) -> None:
    """Serve the ledger over HTTP: the /api/v1 JSON API (OpenAPI at /openapi.json), /metrics
    and the web explorer at /.

    Reads are public; registering needs a token from `modelchain token create`.

    \b
    Example:
      modelchain init --ledger models.db
      modelchain token create --scope write --name ci
      modelchain serve --ledger models.db --port 8080 --workers 2
    """
    from modelchain.server.launch import serve as run_server

    state = click.get_current_context().ensure_object(_State)
    run_server(
        state.ledger,
        host=host,
        port=port,
        workers=workers,
        allow_remote=allow_remote,
        max_body=max_body,
        max_batch=max_batch,
        log_level=log_level,
    )


@cli.group(context_settings=CONTEXT)
def token() -> None:
    """Bearer tokens for `modelchain serve`, kept only as SHA-256 hashes in MODELCHAIN_HOME."""


@token.command("create")
@click.option("--scope", required=True, type=click.Choice(["read", "write"]), help="Scope.")
@click.option("--name", default="", help="A label, to find the token again (e.g. ci).")
@click.option("--expires", type=float, metavar="DAYS", help="Expire after DAYS days.")
@json_option
def token_create(scope: str, name: str, expires: float | None, as_json: bool) -> None:
    """Make a token and print it once (only its hash is stored).

    \b
    Example:
      TOKEN=$(modelchain token create --scope write --name ci)
      curl -H "Authorization: Bearer $TOKEN" ...
    """
    from modelchain.server.tokens import TokenStore

    secret, record = TokenStore().create(scope, name, expires)
    if as_json:
        _emit({"token": secret, **record.public()})
        return
    click.echo(secret)
    click.echo(f"token {record.id} ({scope} scope) created; it is shown only this once", err=True)


@token.command("list")
@json_option
def token_list(as_json: bool) -> None:
    """List tokens (id, scope, name, dates; never the tokens themselves).

    \b
    Example:
      modelchain token list --json
    """
    from modelchain.server.tokens import TokenStore

    records = [r.public() for r in TokenStore().records()]
    if as_json:
        _emit({"tokens": records})
        return
    if not records:
        click.echo("no tokens (create one with `modelchain token create --scope write`)")
    for r in records:
        expires = "never" if r["expires"] is None else _fmt_time(r["expires"])
        state = " (expired)" if r["expired"] else ""
        click.echo(
            f"{r['id']}  {r['scope']:5}  {r['name'] or '-'}  "
            f"created {_fmt_time(r['created'])}  expires {expires}{state}"
        )


@token.command("revoke")
@click.argument("ident", metavar="ID_OR_NAME")
@json_option
def token_revoke(ident: str, as_json: bool) -> None:
    """Revoke a token by id (or by name, if unique); a running server notices at once.

    \b
    Example:
      modelchain token revoke ci
    """
    from modelchain.server.tokens import TokenStore

    record = TokenStore().revoke(ident)
    if as_json:
        _emit({"revoked": record.public()})
        return
    click.echo(f"revoked token {record.id} ({record.scope} scope, {record.name or 'unnamed'})")


# -- trust: what this verifier remembers, and the way back ---------------------------------


@cli.group(context_settings=CONTEXT)
def trust() -> None:
    """What this verifier remembers about each log (MODELCHAIN_HOME/trust), and the way back
    when a refused change was intended.

    \b
    Examples:
      modelchain trust list
      modelchain trust move modelchain.local/0123abcd ../copy/.modelchain/ledger.db
      modelchain trust forget --ledger .modelchain/ledger.db --yes
    """


@trust.command("list")
@json_option
def trust_list(as_json: bool) -> None:
    """List the logs this verifier remembers: origin, accepted size, location, signing key."""
    from modelchain.log.home import Home
    from modelchain.use.trust import remembered

    home = Home()
    logs = remembered(home)
    if as_json:
        _emit({"home": str(home.path), "logs": logs})
        return
    if not logs:
        click.echo(f"this verifier ({home.path}) remembers no logs")
        return
    for log in logs:
        size = "no checkpoint accepted" if log["size"] is None else f"size {log['size']}"
        click.echo(f"{log['origin']}  {size}  at {log['location'] or '(location not recorded)'}")
        if log["key"]:
            click.echo(f"    key {log['key']}")
        for copy in log["copies"]:
            click.echo(f"    copy seen at {copy}")


@trust.command("forget")
@click.argument("origin", required=False)
@click.option(
    "--ledger",
    "ledger",
    metavar="LOCATION",
    help="Forget the log remembered at LOCATION (only that location, if it held a copy).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def trust_forget(origin: str | None, ledger: str | None, yes: bool, as_json: bool) -> None:
    """Forget a log (ORIGIN, or the one at --ledger): after a ledger was deleted, replaced or
    restored from an older copy on purpose. Without --yes, asks on a terminal.

    \b
    Examples:
      modelchain trust forget modelchain.local/0123abcd --yes
      modelchain trust forget --ledger blockchain_data.json
    """
    from modelchain.core.errors import UsageError
    from modelchain.log.home import Home
    from modelchain.use.trust import forget, plan_forget

    home = Home()
    plan = plan_forget(home, origin, ledger)
    if plan["scope"] == "log":
        what = f"log {plan['origin']!r} (accepted size {plan['log']['size']})"
        warning = "; a rollback of it would go unnoticed until it is accepted again"
    else:
        what = f"that {plan['location']} held a copy of log {plan['origin']!r}"
        warning = ""
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to forget {what} without confirmation: pass --yes")
        if not click.confirm(f"Forget {what}{warning}?", default=False, err=True):
            raise UsageError("nothing forgotten")
    done = forget(plan, home)
    if as_json:
        _emit(done)
        return
    if done["forgot"] == "log":
        click.echo(f"Forgot log {done['origin']}")
    else:
        click.echo(f"Forgot {done['locations'][0]} (a copy of log {done['origin']})")


@trust.command("move")
@click.argument("origin")
@click.argument("new_location", metavar="NEW_LOCATION")
@json_option
def trust_move(origin: str, new_location: str, as_json: bool) -> None:
    """Make NEW_LOCATION the place where log ORIGIN lives (after `cp -r` or `mv` of a
    project), once the ledger there audits as that log.

    \b
    Example:
      modelchain trust move modelchain.local/0123abcd /data/new/.modelchain/ledger.db
    """
    from modelchain.log.home import Home
    from modelchain.use.trust import move

    done = move(Home(), origin, new_location)
    if as_json:
        _emit(done)
        return
    was = (
        f" (was {done['previous']})"
        if done["previous"] and done["previous"] != done["location"]
        else ""
    )
    click.echo(f"Log {origin} now lives at {done['location']}{was}")


# -- entry point --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; every failure becomes one line and an exit code, never a traceback."""
    from modelchain.core.errors import ModelchainError, command_line_text

    args = list(argv) if argv is not None else sys.argv[1:]
    as_json = "--json" in args
    try:
        cli.main(args=args, prog_name="modelchain", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("modelchain: aborted", err=True)
        sys.exit(130)
    except ModelchainError as exc:
        details = getattr(exc, "details", None) or {}
        if exc.way_out is not None:
            details = {**details, "way_out": exc.way_out.as_json()}
        _fail(command_line_text(exc), exc.exit_code, as_json, details)
    except KeyboardInterrupt:
        click.echo("modelchain: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 2, as_json)
    except Exception as exc:  # a bug: still one line, with a way to see the traceback
        if os.environ.get("MODELCHAIN_DEBUG"):
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (set MODELCHAIN_DEBUG=1 for details)",
            3,
            as_json,
        )
    sys.exit(0)


def _fail(
    message: str, code: int, as_json: bool, details: dict[str, Any] | None = None
) -> NoReturn:
    """One line on stderr; with --json, the same as an object on stdout."""
    if as_json:
        payload: dict[str, Any] = {"error": message, "exit_code": code}
        if details:
            payload.update(details)
        _emit(payload)
    click.echo(f"modelchain: error: {message}", err=True)
    sys.exit(code)
