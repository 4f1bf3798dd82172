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

from . import __version__

EPILOG = (
    "Exit status: 0 verified/success, 1 verification failed, 2 usage error or unreadable input.\n\n"
    "Ledger: --ledger or MODELCHAIN_LEDGER (default .modelchain/ledger.db); *.json is the seed "
    "format, any other path SQLite. Keys and trust state: MODELCHAIN_HOME."
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
    from .note import Verifier

    out = []
    for key in keys:
        for part in key.split():
            out.append(Verifier.from_string(part))
    return out


def _open_ledger(*, create: bool = False) -> Any:
    from .ledger import Ledger

    state = click.get_current_context().ensure_object(_State)
    return Ledger.open(state.ledger, create=create)


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _fmt_time(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the group ----------------------------------------------------------------------------


@click.group(context_settings=CONTEXT, epilog=EPILOG)
@click.version_option(__version__, "-V", "--version", prog_name="modelchain")
@click.option(
    "--ledger",
    metavar="LOCATION",
    envvar="MODELCHAIN_LEDGER",
    help="Ledger: a *.json path (seed format), another path (SQLite). "
    "Default: .modelchain/ledger.db",
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
    from .note import Checkpoint, parse_note

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
        from .ledger import n_blocks

        click.echo(f"Ledger {ledger.location} (log {cp.origin}, {n_blocks(cp.size)})")
        click.echo(f"Operator key: {ledger.home.key_path}")
        click.echo(f"Verifier key: {vkey}")


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option("--name", help="Model name (default: PATH's base name).")
@click.option(
    "--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Metadata to record (repeatable)."
)
@hashing_options
@ledger_option
@json_option
def register(
    path: str,
    name: str | None,
    meta: Sequence[str],
    ignore: Sequence[str],
    follow_symlinks: bool,
    allow_outside: bool,
    as_json: bool,
) -> None:
    """Hash a model file or directory and append a block for it.

    \b
    Examples:
      modelchain register model.joblib
      modelchain register models/llm/ --name llm --meta team=nlp --ignore '*.tmp'
    """
    from .errors import UsageError

    metadata: dict[str, str] = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta takes KEY=VALUE, got {item!r}")
        metadata[key] = value
    with _open_ledger(create=True) as ledger:
        block = ledger.register(
            path,
            name=name,
            metadata=metadata,
            ignore=_ignores(ignore),
            follow_symlinks=follow_symlinks,
            allow_outside=allow_outside,
        )
        if as_json:
            _emit({"registered": True, "ledger": ledger.location, "block": block.to_dict()})
            return
        files = f", {len(block.manifest.files)} files" if block.manifest is not None else ""
        click.echo(
            f"Registered {block.label}: sha256 {block.model_hash} ({_fmt_size(block.size)}{files})"
        )


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option("--name", help="Registered name to check against (default: PATH's base name).")
@click.option(
    "--load",
    "test_load",
    is_flag=True,
    help="Then test-load the model in a child process with the restricted unpickler.",
)
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="With --load, also allow this import (pkg.mod.Name or pkg.mod.*); repeatable.",
)
@key_option
@hashing_options
@ledger_option
@json_option
def verify(
    path: str,
    name: str | None,
    test_load: bool,
    trusted: Sequence[str],
    keys: Sequence[str],
    ignore: Sequence[str],
    follow_symlinks: bool,
    allow_outside: bool,
    as_json: bool,
) -> None:
    """Check PATH against the newest registered version of its name, and audit the ledger.

    Exit 1 names what differs: an older version it matches, the changed, added or removed
    files of a directory, the changed tensors of a safetensors file.

    \b
    Examples:
      modelchain verify model.joblib
      modelchain verify deploy/model.joblib --name model.joblib --load
      modelchain --ledger blockchain_data.json verify iris_model.joblib --json
    """
    with _open_ledger() as ledger:
        result = ledger.verify(
            path,
            name=name,
            keys=_verifiers(keys),
            ignore=_ignores(ignore),
            follow_symlinks=follow_symlinks,
            allow_outside=allow_outside,
        )
        loaded = _load_in_child(ledger, path, result.name, trusted) if test_load else None
        if as_json:
            _emit({**result.as_dict(), **({"load": loaded} if loaded else {})})
            return
        click.echo(
            f"OK: {path} matches {result.block.label}, "
            f"registered {_fmt_time(result.block.timestamp)}"
        )
        from .ledger import n_blocks

        click.echo(
            f"Ledger valid: {n_blocks(result.audit.size)}, "
            f"checkpoint signed by {result.audit.origin}"
        )
        if loaded is not None:
            click.echo(f"Test load in a child process: {loaded.get('format')} model loaded")


def _load_in_child(ledger: Any, path: str, name: str, trusted: Sequence[str]) -> dict[str, Any]:
    """`verify --load`: the restricted load runs in a fresh process, so even a loader bug
    cannot touch this one; any refusal is this command's failure."""
    from .errors import VerificationError
    from .guard import verify_load_in_child

    verdict = verify_load_in_child(
        path,
        ledger_location=ledger.location,
        name=name,
        trusted=trusted,
        home=ledger.home.path,
    )
    if not verdict.get("loaded"):
        error = VerificationError(f"{path}: test load refused: {verdict.get('error', verdict)}")
        error.exit_code = int(verdict.get("exit_code") or 1)
        error.details = {"verified": False, "load": verdict}  # type: ignore[attr-defined]
        raise error
    return verdict


@cli.command()
@key_option
@ledger_option
@json_option
def audit(keys: Sequence[str], as_json: bool) -> None:
    """Check every block, the Merkle tree, the signed checkpoint, and against rollback.

    \b
    Examples:
      modelchain audit
      modelchain audit --key "$(cat operator.vkey)"   # an auditor without the operator key
    """
    with _open_ledger() as ledger:
        report = ledger.audit(keys=_verifiers(keys))
        from .ledger import n_blocks

        if as_json:
            _emit(report.as_dict())
            return
        import base64

        click.echo(f"Ledger valid: {report.location}")
        click.echo(f"  log:        {report.origin}")
        click.echo(f"  size:       {n_blocks(report.size)}")
        click.echo(f"  root hash:  {base64.b64encode(report.root_hash).decode()}")
        if report.previously_trusted is None:
            click.echo("  trust:      first checkpoint accepted for this log")
        else:
            click.echo(
                "  trust:      extends the checkpoint accepted before "
                f"({n_blocks(report.previously_trusted)})"
            )


@cli.command()
@click.option("--name", help="Only blocks of this model name.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N blocks.")
@ledger_option
@json_option
def log(name: str | None, limit: int | None, as_json: bool) -> None:
    """List blocks, oldest first (not an audit: run `modelchain audit` for that)."""
    with _open_ledger() as ledger:
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
@click.argument("path", type=click.Path(path_type=str))
@click.option("--manifest", is_flag=True, help="For a directory, list every file's digest too.")
@hashing_options
@json_option
def hash_(
    path: str,
    manifest: bool,
    ignore: Sequence[str],
    follow_symlinks: bool,
    allow_outside: bool,
    as_json: bool,
) -> None:
    """Print a model's digest (a file: its SHA-256, as sha256sum prints it)."""
    from .digest import digest_path, manifest_to_json

    d = digest_path(
        path, ignore=_ignores(ignore), follow_symlinks=follow_symlinks, allow_outside=allow_outside
    )
    if as_json:
        out: dict[str, Any] = {"path": path, "kind": d.kind, "sha256": d.sha256, "size": d.size}
        if d.manifest is not None:
            out["manifest"] = manifest_to_json(d.manifest)
        _emit(out)
        return
    if d.kind == "file":
        click.echo(f"{d.sha256}  {path}")
        return
    if manifest and d.manifest is not None:
        for entry in d.manifest.files:
            click.echo(f"{entry.sha256}  {entry.path}")
    click.echo(f"{d.sha256}  {path.rstrip('/')}/")


@cli.command()
@click.option("--verifier-key", is_flag=True, help="Print the verifier key of this log instead.")
@ledger_option
@json_option
def checkpoint(verifier_key: bool, as_json: bool) -> None:
    """Print the newest signed checkpoint (a C2SP signed note)."""
    from .note import Checkpoint, parse_note

    with _open_ledger() as ledger:
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
    from .errors import InputError
    from .note import open_note

    try:
        if file == "-":
            text = sys.stdin.buffer.read().decode("utf-8")
        else:
            with open(file, encoding="utf-8", newline="") as fh:
                text = fh.read()
    except FileNotFoundError:
        raise InputError(f"no such file: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
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
@ledger_option
@json_option
def prove_inclusion(index: int, size: int | None, as_json: bool) -> None:
    """Inclusion proof of block INDEX."""
    from . import merkle

    with _open_ledger() as ledger:
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
@ledger_option
@json_option
def prove_consistency(old_size: int, new_size: int | None, as_json: bool) -> None:
    """Consistency proof from OLD_SIZE to NEW_SIZE (default: the signed size)."""
    from . import merkle

    with _open_ledger() as ledger:
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
    """Copy the audited ledger to DESTINATION (*.json: the seed format; else SQLite)."""
    from .ledger import copy_ledger

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
    from .ledger import Ledger, copy_ledger
    from .store import resolve_location

    target = resolve_location(click.get_current_context().ensure_object(_State).ledger)
    with Ledger.open(source) as src:
        report = copy_ledger(src, target, keys=_verifiers(keys))
        _report_copy(report, src.location, target, as_json)


def _report_copy(report: Any, source: str, target: str, as_json: bool) -> None:
    from .ledger import n_blocks

    if as_json:
        _emit({"copied": report.size, "from": source, "to": target, "origin": report.origin})
    else:
        click.echo(
            f"Copied {n_blocks(report.size)} of log {report.origin} from {source} to {target}"
        )


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="Also allow this import (pkg.mod.Name or pkg.mod.*); repeatable.",
)
@json_option
def scan(path: str, trusted: Sequence[str], as_json: bool) -> None:
    """Scan a pickle/joblib file (or every file of a directory) without loading it.

    \b
    Examples:
      modelchain scan model.joblib
      modelchain scan models/ --json
      modelchain scan model.pkl --trust mypkg.layers.Dense

    Exit 0 only if every file was parsed to its end and every import is allowed.
    """
    from .scan import DirectoryScan, scan_path

    result = scan_path(path, trusted=trusted)
    if as_json:
        _emit(result.as_dict())
    else:
        reports = result.reports if isinstance(result, DirectoryScan) else [result]
        for finding in getattr(result, "findings", []) if isinstance(result, DirectoryScan) else []:
            click.echo(f"{path}: {finding}")
        for report in reports:
            verdict = "ok" if report.ok else "UNSAFE"
            click.echo(
                f"{report.path}: {verdict} ({report.format}, {len(report.imports)} imports, "
                f"parsed {report.parsed_bytes} of {report.total_bytes} bytes)"
            )
            for record in report.imports:
                mark = "allowed" if record.allowed else "REFUSED"
                click.echo(f"  {mark:8} {record.module}.{record.name}  ({record.reason})")
            for finding in report.findings:
                click.echo(f"  finding: {finding}")
    if not result.ok:
        sys.exit(1)


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=str),
    help="Run in this (new or empty) directory instead of a temporary one, and keep it.",
)
def demo(directory: str | None) -> None:
    """Tell the seed story end to end: train, register, verify, and four attacks."""
    from .seed import run_demo

    ok = run_demo(directory)
    sys.exit(0 if ok else 1)


# -- entry point --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; every failure becomes one line and an exit code, never a traceback."""
    from .errors import ModelchainError

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
        _fail(str(exc), exc.exit_code, as_json, getattr(exc, "details", None))
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
