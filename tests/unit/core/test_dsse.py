"""DSSE's pre-authentication encoding, once for registration claims and OMS bundles."""

from __future__ import annotations

from modelchain.claims import bundle, claim, provenance
from modelchain.core import dsse


def test_pae_matches_the_dsse_specification_vector() -> None:
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_lengths_count_bytes_not_characters() -> None:
    assert dsse.pae("t\u00e9", "\u00e9".encode()) == b"DSSEv1 3 t\xc3\xa9 2 \xc3\xa9"


def test_claims_and_bundles_sign_through_the_one_encoding() -> None:
    assert claim.pae is dsse.pae
    assert bundle.pae is dsse.pae
    assert bundle.PAYLOAD_TYPE == dsse.IN_TOTO_PAYLOAD_TYPE


def test_one_statement_type() -> None:
    assert provenance.STATEMENT_TYPE == bundle.STATEMENT_TYPE == dsse.STATEMENT_TYPE
    assert provenance.STATEMENT_TYPES[0] == dsse.STATEMENT_TYPE
    # OMS bundles are defined on Statement v1 only; provenance files may also be v0.1
    assert "https://in-toto.io/Statement/v0.1" in provenance.STATEMENT_TYPES
