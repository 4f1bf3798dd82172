"""How a model was made: the in-toto provenance recorded with a registration.

An in-toto predicate (`{"predicateType", "predicate"}`), stored in a block and so covered by
the signed Merkle root: training data digests, hyperparameters, metrics, library versions,
source commit. Our own predicate type is `PREDICATE_TYPE`; any other in-toto predicate
(SLSA, ...) is kept as given. The registrant's claim and its signatures are
`modelchain.claims.claim`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from modelchain.core.canonical import canonical_json, is_sha256_hex, json_type
from modelchain.core.dsse import LEGACY_STATEMENT_TYPES, STATEMENT_TYPE
from modelchain.core.errors import (
    InputError,
    LedgerInvalid,
    UsageError,
)
from modelchain.core.strictjson import JSONLimitError, loads_within
from modelchain.fs.inputs import read_small_file

PREDICATE_TYPE = "https://modelchain.dev/provenance/v1"
#: the in-toto statement versions a provenance file may be (v1 first: the one written)
STATEMENT_TYPES = (STATEMENT_TYPE, *LEGACY_STATEMENT_TYPES)
#: a provenance file or block field larger than this is refused (it is a claim, not a dataset)
MAX_PROVENANCE_BYTES = 1 << 20
#: libraries whose versions are recorded when installed (distribution names)
LIBRARIES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "joblib",
    "pandas",
    "torch",
    "tensorflow",
    "keras",
    "jax",
    "transformers",
    "safetensors",
    "onnx",
    "xgboost",
    "lightgbm",
)
GIT_TIMEOUT = 5.0


# -- provenance ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """An in-toto predicate, and the subject digests its statement named (if it was one)."""

    predicate_type: str
    predicate: Mapping[str, Any]
    #: sha256 digests of the statement's subjects; empty when none were given
    subjects: tuple[str, ...] = ()
    #: the subjects' names (paths, for a directory's files), one per digest; None if unnamed
    subject_names: tuple[str | None, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The form stored in a block."""
        return {"predicateType": self.predicate_type, "predicate": dict(self.predicate)}

    def with_subjects(
        self, subjects: tuple[str, ...], names: tuple[str | None, ...] = ()
    ) -> Provenance:
        return Provenance(self.predicate_type, self.predicate, subjects, names)

    @property
    def is_ours(self) -> bool:
        return self.predicate_type == PREDICATE_TYPE

    def check_subject(
        self, model_hash: str, file_digests: Iterable[str | tuple[str, str]] = ()
    ) -> None:
        """A statement about other artifacts must not be attached to this model: its subjects
        must include the model's digest, or, for a directory, be exactly its files: every
        (path, sha256) of the manifest and nothing else. (A statement naming only some of
        the files, or the right digests under other paths, is about something else.)

        `file_digests` holds the directory's `(path, sha256)` pairs; bare digests (without
        paths) must then equal the subjects' digests as a set."""
        if not self.subjects:
            return
        if model_hash in self.subjects:
            return
        files = list(file_digests)
        if files:
            if all(isinstance(f, tuple) for f in files):
                names = self.subject_names or (None,) * len(self.subjects)
                given = set(zip(names, self.subjects, strict=True))
                if given == set(files) and len(self.subjects) == len(files):
                    return
            elif set(self.subjects) == {f if isinstance(f, str) else f[1] for f in files}:
                return
            raise InputError(
                f"the provenance statement's {len(self.subjects)} subjects are not exactly "
                f"this directory's {len(files)} files (every path with its sha256) nor its "
                f"digest (sha256 {model_hash[:12]}…)"
            )
        raise InputError(
            f"the provenance statement's subjects ({', '.join(s[:12] for s in self.subjects)}) "
            f"do not include this model (sha256 {model_hash[:12]}…)"
        )

    @classmethod
    def from_json(cls, obj: Any, where: str = "provenance") -> Provenance:
        """An in-toto Statement, a `{predicateType, predicate}` pair, or a bare predicate of
        our own type. Raises InputError naming what is wrong."""
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object, found {json_type(obj)}")
        subjects: tuple[str, ...] = ()
        names: tuple[str | None, ...] = ()
        if "_type" in obj:
            if obj["_type"] not in STATEMENT_TYPES:
                raise InputError(
                    f"{where}: unsupported _type {str(obj['_type'])[:80]!r} "
                    f"(expected {STATEMENT_TYPE})"
                )
            subjects = _subject_digests(obj.get("subject", []), where)
            names = _subject_names(obj.get("subject", []))
        if "_type" in obj or "predicateType" in obj:
            ptype = obj.get("predicateType")
            if not isinstance(ptype, str) or not ptype.strip():
                raise InputError(f"{where}: 'predicateType' must be a non-empty string")
            predicate = obj.get("predicate", {})
            if not isinstance(predicate, dict):
                raise InputError(f"{where}: 'predicate' must be a JSON object")
        else:
            ptype, predicate = PREDICATE_TYPE, obj
        if ptype == PREDICATE_TYPE:
            check_predicate(predicate, where)
        size = len(canonical_json(predicate))  # also refuses what JSON cannot carry exactly
        if size > MAX_PROVENANCE_BYTES:
            raise InputError(f"{where}: the predicate is too large ({size} bytes)")
        return cls(ptype, predicate, subjects, names)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Provenance:
        """Read a provenance file (see `from_json`), refusing anything that is not small,
        well-formed JSON."""
        p = Path(path)
        data = read_small_file(p, limit=MAX_PROVENANCE_BYTES, what="provenance file")
        try:
            obj = loads_within(data)
        except UnicodeDecodeError:
            raise InputError(f"{p}: not UTF-8 text") from None
        except JSONLimitError as exc:
            raise InputError(f"{p}: beyond what canonical JSON carries ({exc})") from None
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{p}: not valid JSON ({_short(exc)})") from None
        return cls.from_json(obj, str(p))


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _subject_names(subjects: list[Any]) -> tuple[str | None, ...]:
    """Each subject's name (checked to be there by `_subject_digests`), None if it has none."""
    return tuple(
        s["name"] if isinstance(s.get("name"), str) and s["name"] else None for s in subjects
    )


def _subject_digests(subjects: Any, where: str) -> tuple[str, ...]:
    if not isinstance(subjects, list):
        raise InputError(f"{where}: 'subject' must be an array")
    out = []
    for i, subject in enumerate(subjects):
        digest = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(digest, dict):
            raise InputError(f"{where}: subject {i} has no 'digest' object")
        sha = digest.get("sha256")
        if not isinstance(sha, str) or not is_sha256_hex(sha.lower()):
            raise InputError(f"{where}: subject {i} has no sha256 digest")
        out.append(sha.lower())
    return tuple(out)


def check_predicate(predicate: Mapping[str, Any], where: str = "provenance") -> None:
    """The fields of our predicate that have a meaning must have the right shape; other
    fields are kept as given (a team may record more)."""
    data = predicate.get("trainingData", [])
    if not isinstance(data, list):
        raise InputError(f"{where}: 'trainingData' must be an array")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("digest"), dict):
            raise InputError(f"{where}: trainingData[{i}] must be an object with a 'digest'")
        for algo, value in item["digest"].items():
            if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{16,128}", value):
                raise InputError(f"{where}: trainingData[{i}] digest {algo!r} is not lowercase hex")
    for key in ("hyperparameters", "metrics", "libraries", "source"):
        if key in predicate and not isinstance(predicate[key], dict):
            raise InputError(f"{where}: {key!r} must be a JSON object")
    for lib, version in predicate.get("libraries", {}).items():
        if not isinstance(version, str):
            raise InputError(f"{where}: libraries[{lib!r}] must be a version string")


def parse_assignments(items: Sequence[str], option: str) -> dict[str, Any]:
    """`k=v` pairs; each value is JSON when it parses as JSON (`lr=0.1`, `layers=[64,64]`),
    else the string itself (`solver=lbfgs`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if isinstance(value, float) and not math.isfinite(value):
            value = text  # NaN and infinities are not JSON: keep what the user wrote
        out[key] = value
    return out


def library_versions() -> dict[str, str]:
    """Python, modelchain, and the installed ML libraries of `LIBRARIES`."""
    import importlib.metadata  # here: it costs a start-up (verify) 20 ms it never uses

    from modelchain import __version__

    out = {"python": platform.python_version(), "modelchain": __version__}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        except Exception:  # a broken installation must not stop a registration
            continue
    return out


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _public_url(url: str) -> str:
    """A remote URL without any user name or token in it (never record a credential)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme and parts.hostname:
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return urlunsplit((parts.scheme, parts.hostname + port, parts.path, "", ""))
    return "" if parts.scheme else url  # scp-like `git@host:org/repo.git` carries no secret


def git_source(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The commit of the git checkout holding `path` (with a dirty flag and the origin
    remote), or None when it is not in one or git is not available."""
    p = Path(path).resolve()
    cwd = p if p.is_dir() else p.parent
    if not cwd.is_dir():
        return None
    commit = _git(["rev-parse", "--verify", "-q", "HEAD"], cwd)
    if not commit or not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", commit):
        return None
    source: dict[str, Any] = {"commit": commit}
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    if status is not None:
        source["dirty"] = bool(status)
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    if remote:
        url = _public_url(remote)
        if url:
            source["repository"] = url
    return source


def data_digest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A `trainingData` entry for a data file or directory (a directory: its manifest
    digest, as `modelchain hash` prints it)."""
    from modelchain.fs.digest import digest_path

    d = digest_path(path)
    name = Path(os.path.normpath(os.fspath(path))).name or os.fspath(path)
    return {"name": name, "digest": {"sha256": d.sha256}, "size": d.size, "kind": d.kind}


def collect(
    model_path: str | os.PathLike[str],
    *,
    base: Provenance | None = None,
    data: Sequence[str | os.PathLike[str]] = (),
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    automatic: bool = True,
) -> Provenance | None:
    """The provenance to record for a registration: `base` (from a file) with the given
    training data, hyperparameters and metrics added, and -- with `automatic` -- library
    versions and the git commit filled in where the base says nothing."""
    extra = bool(data or params or metrics)
    if base is not None and not base.is_ours:
        if extra:
            raise UsageError(
                f"--data, --param and --metric add to modelchain provenance, but the "
                f"provenance file has predicate type {base.predicate_type}"
            )
        return base
    if base is None and not extra and not automatic:
        return None
    predicate: dict[str, Any] = dict(base.predicate) if base is not None else {}
    if data:
        entries = list(predicate.get("trainingData", []))
        entries.extend(data_digest(p) for p in data)
        predicate["trainingData"] = entries
    if params:
        predicate["hyperparameters"] = {**predicate.get("hyperparameters", {}), **params}
    if metrics:
        predicate["metrics"] = {**predicate.get("metrics", {}), **metrics}
    if automatic:
        if "libraries" not in predicate:
            predicate["libraries"] = library_versions()
        if "source" not in predicate:
            source = git_source(model_path)
            if source is not None:
                predicate["source"] = source
    subjects = base.subjects if base is not None else ()
    names = base.subject_names if base is not None else ()
    return Provenance.from_json(
        {"predicateType": PREDICATE_TYPE, "predicate": predicate}
    ).with_subjects(subjects, names)


def statement(
    subject_name: str, sha256: str, predicate: Mapping[str, Any], predicate_type: str = ""
) -> dict[str, Any]:
    """An in-toto Statement v1 about one artifact (what `train_model.py` writes)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": sha256}}],
        "predicateType": predicate_type or PREDICATE_TYPE,
        "predicate": dict(predicate),
    }


def check_stored(raw: Any, where: str) -> dict[str, Any]:
    """A block's `provenance` field, as strictly as the rest of a stored block."""
    if not isinstance(raw, dict) or set(raw) != {"predicateType", "predicate"}:
        raise LedgerInvalid(
            f"{where}: field 'provenance' must be an object of exactly "
            "'predicateType' and 'predicate'"
        )
    if not isinstance(raw["predicateType"], str) or not isinstance(raw["predicate"], dict):
        raise LedgerInvalid(f"{where}: field 'provenance' has the wrong types")
    return raw


def provenance_lines(provenance: Mapping[str, Any]) -> list[str]:
    """Our predicate as short readable lines; any other predicate as indented JSON."""
    predicate = provenance.get("predicate", {})
    if provenance.get("predicateType") != PREDICATE_TYPE:
        return json.dumps(predicate, indent=2, ensure_ascii=False).splitlines()
    out: list[str] = []
    for item in predicate.get("trainingData", []):
        digests = ", ".join(f"{k} {v}" for k, v in item.get("digest", {}).items())
        out.append(f"training data: {item.get('name', '?')}  {digests}")
    for key, label in (("hyperparameters", "hyperparameters"), ("metrics", "metrics")):
        values = predicate.get(key)
        if values:
            text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
            out.append(f"{label}: {text}")
    libraries = predicate.get("libraries")
    if libraries:
        out.append("libraries: " + ", ".join(f"{k} {v}" for k, v in libraries.items()))
    source = predicate.get("source")
    if source:
        where = source.get("repository", "")
        commit = source.get("commit", "?")
        dirty = " (uncommitted changes)" if source.get("dirty") else ""
        out.append(f"source: {where + ' ' if where else ''}commit {commit}{dirty}")
    known = {"trainingData", "hyperparameters", "metrics", "libraries", "source"}
    for key, value in predicate.items():
        if key not in known:
            out.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    return out
