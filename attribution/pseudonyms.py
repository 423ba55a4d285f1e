"""Keyed pseudonyms of user ids (HMAC-SHA256), applied at ingest when the setting asks for it.

Docs: ``docs/security.md``. ``pseudonym = hex(HMAC-SHA256(key, utf8(user_id)))[:32]`` (128 bits):
the same id gives the same pseudonym on every source and every night (joins still work), another
key gives unrelated pseudonyms, and without the key an id cannot be confirmed by hashing guesses
(unlike a plain or salted-in-the-files hash). The key comes only from the environment variable
``ATTRIBUTION_USER_ID_KEY`` (``attribution.config.user_id_key``); it is never stored, logged or
hashed into the settings hash. A key check value (an HMAC of a fixed label, not of any id) is
kept in the warehouse so that a run with another key, or with pseudonymisation switched on or off
over loaded data, stops instead of mixing two id spaces.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

PSEUDONYM_HEX_CHARS = 32
_KEY_CHECK_LABEL = b"attribution user_id key check v1"


def pseudonym(user_id: str, key: bytes) -> str:
    """Return the pseudonym of one user id: the first 32 hex digits of HMAC-SHA256(key, id)."""
    return hmac.digest(key, user_id.encode("utf-8"), "sha256").hex()[:PSEUDONYM_HEX_CHARS]


def pseudonyms(user_ids: Iterable[str], key: bytes) -> list[str]:
    """Return the pseudonym of each user id, in order (about 3 microseconds per id)."""
    return [pseudonym(user_id, key) for user_id in user_ids]


def key_check(key: bytes) -> str:
    """Return a value that tells keys apart without revealing them (an HMAC of a fixed label)."""
    return "hmac-sha256:" + hmac.digest(key, _KEY_CHECK_LABEL, "sha256").hex()[:16]
