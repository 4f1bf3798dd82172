"""Is a PostgreSQL ledger schema exactly what modelchain creates?

Whoever can write the schema can also change its definition: turn a generated lookup column
into a plain one (``ALTER TABLE ... ALTER COLUMN name DROP EXPRESSION``) and give a block
another name, so that lookups miss the newest version; add a trigger, a rule or a row
security policy that rewrites or hides rows as they are read; make a table inherit rows
from elsewhere. Each of those changes the catalogue. So opening a store compares the
catalogue's description of every relation, column (type, collation, NOT NULL, generation
expression, default), constraint, index, trigger, rule, policy and inheritance link in the
schema with that of a reference made by this version's own DDL, and refuses any difference.

The reference is built once per process in the session's temporary schema, inside a
transaction that is rolled back: it always matches the DDL in `postgres.py` and the
server's own rendering of expressions, whatever the PostgreSQL version.
"""

from __future__ import annotations

import threading
from typing import Any

from modelchain.core.errors import LedgerInvalid, LedgerUnreadable

# One row per fact; %(ns)s is the namespace's oid. Index definitions name their table's
# schema, which is removed (schema names are validated: no quoting to worry about).
_DESCRIBE = """
WITH rels AS (
    SELECT c.oid, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
           c.relispartition
    FROM pg_class c WHERE c.relnamespace = %(ns)s
)
SELECT 'relation ' || r.relname || ' kind ' || r.relkind::text
       || ' row security ' || r.relrowsecurity || '/' || r.relforcerowsecurity
       || ' partition ' || r.relispartition
FROM rels r
UNION ALL
SELECT 'column ' || r.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' not null ' || a.attnotnull
       || ' generated ' || quote_literal(a.attgenerated::text)
       || ' identity ' || quote_literal(a.attidentity::text)
       || ' collation ' || coalesce(co.collname::text, '-')
       || ' expression ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
FROM rels r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = r.oid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
UNION ALL
SELECT 'constraint ' || r.relname || '.' || c.conname || ' ' || pg_get_constraintdef(c.oid)
       || ' deferrable ' || c.condeferrable || ' validated ' || c.convalidated
FROM pg_constraint c JOIN rels r ON r.oid = c.conrelid
UNION ALL
SELECT 'index ' || regexp_replace(pg_get_indexdef(i.indexrelid), ' ON [a-z0-9_]+\\.', ' ON ')
       || ' valid ' || i.indisvalid || ' ready ' || i.indisready
FROM pg_index i JOIN rels r ON r.oid = i.indrelid
UNION ALL
SELECT 'trigger ' || r.relname || '.' || t.tgname
FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
UNION ALL
SELECT 'rule ' || r.relname || '.' || w.rulename
FROM pg_rewrite w JOIN rels r ON r.oid = w.ev_class
UNION ALL
SELECT 'policy ' || r.relname || '.' || p.polname
FROM pg_policy p JOIN rels r ON r.oid = p.polrelid
UNION ALL
SELECT 'inheritance ' || h.inhrelid::regclass::text || ' of ' || h.inhparent::regclass::text
FROM pg_inherits h WHERE h.inhparent IN (SELECT oid FROM rels)
    OR h.inhrelid IN (SELECT oid FROM rels)
"""

_reference: dict[int, frozenset[str]] = {}
_reference_lock = threading.Lock()


def describe(conn: Any, namespace_oid: int) -> frozenset[str]:
    """Every fact of the catalogue about the objects in one schema."""
    rows = conn.execute(_DESCRIBE, {"ns": namespace_oid}).fetchall()
    return frozenset(str(row[0]) for row in rows)


def reference(conn: Any, create_sql: str, pg: Any) -> frozenset[str]:
    """What this version's DDL creates, described by this server (made once per process)."""
    version = int(conn.info.server_version)
    with _reference_lock:
        found = _reference.get(version)
        if found is not None:
            return found
        statements = "\n".join(
            line for line in create_sql.splitlines() if not line.startswith("CREATE SCHEMA")
        )
        try:
            with conn.transaction():
                conn.execute(statements.format(s="pg_temp"))
                (oid,) = conn.execute("SELECT pg_my_temp_schema()::bigint").fetchone()
                found = describe(conn, int(oid))
                raise pg.Rollback()
        except pg.Error as exc:
            raise LedgerUnreadable(
                f"cannot check the ledger's schema against a temporary copy: {exc}"
            ) from None
        assert found is not None
        _reference[version] = found
        return found


def check(conn: Any, schema: str, create_sql: str, pg: Any, location: str) -> None:
    """Refuse (as tampered: exit 1) a ledger schema that differs from what we create."""
    expected = reference(conn, create_sql, pg)
    row = conn.execute("SELECT oid::bigint FROM pg_namespace WHERE nspname = %s", (schema,))
    (oid,) = row.fetchone() or (None,)
    if oid is None:
        raise LedgerUnreadable(f"{location}: schema {schema!r} does not exist")
    found = describe(conn, int(oid))
    if found == expected:
        return
    extra = sorted(found - expected)
    missing = sorted(expected - found)
    if extra:
        what = f"has {extra[0]}" + (f" but lacks {missing[0]}" if missing else "")
    else:
        what = f"lacks {missing[0]}"
    more = len(extra) + len(missing) - (2 if extra and missing else 1)
    tail = f", and {more} more difference(s)" if more > 0 else ""
    raise LedgerInvalid(
        f"{location}: the ledger's tables are not the ones modelchain creates: "
        f"schema {schema!r} {what}{tail}; refusing it as tampered"
    )
