"""DSSE v1 pre-authentication encoding (PAE), and the in-toto statement types.

A DSSE signature covers `PAE(payloadType, payload)`, never the payload alone, so a signature
made for one kind of message can never be replayed as a signature over another. Registration
signatures (payload type: a modelchain claim) and OpenSSF model-signing bundles (payload type:
an in-toto statement) both sign through `pae`, the one copy of the encoding.
"""

from __future__ import annotations

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "LEGACY_STATEMENT_TYPES",
    "STATEMENT_TYPE",
    "pae",
]

#: the DSSE payload type of an in-toto statement (JSON)
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: the in-toto Statement v1 `_type`: what modelchain writes, and all an OMS bundle may carry
#: (the OpenSSF model-signing format is defined on Statement v1)
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: earlier in-toto statement versions a provenance file may still be (0.x is its own major
#: version in in-toto, but its statement layer has the same subject, predicateType and
#: predicate fields, the only ones read)
LEGACY_STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1",)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`,
    lengths as ASCII decimal byte counts. This is what is actually signed."""
    ptype = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
