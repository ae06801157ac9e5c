"""GitHub's libsodium public keys: one pair per secret scope, rotatable.

Scopes name where a secret lives: 'repo:acme/chatbot', 'env:acme/chatbot:production',
'org:acme', 'dependabot:acme/chatbot'. Every pair ever issued stays in
`key_archive` (key_id -> private key hex) so stored secrets remain decryptable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from keyresponse.sandbox.state import State, derive_private_key


def _key_id(public: bytes) -> str:
    # GitHub's key ids are 18-19 digit decimal strings.
    return str(int.from_bytes(hashlib.sha256(public).digest()[:8], "big") % 10**18).rjust(18, "1")


def issue_key(st: State, scope: str) -> dict[str, Any]:
    """Create (or replace, on rotation) the current key pair of a scope."""
    previous = st.github["keys"].get(scope)
    generation = previous["generation"] + 1 if previous else 0
    private = PrivateKey(derive_private_key(st.seed, scope, generation))
    public = bytes(private.public_key)
    entry = {
        "key_id": _key_id(public),
        "key": base64.b64encode(public).decode(),
        "generation": generation,
        "created_at": st.started_at if generation == 0 else int(time.time()),
    }
    st.github["keys"][scope] = entry
    st.github["key_archive"][entry["key_id"]] = bytes(private).hex()
    return entry


def rotate(st: State, scope: str) -> None:
    if scope in st.github["keys"]:
        issue_key(st, scope)


def encrypt(st: State, scope: str, plaintext: str) -> tuple[str, str]:
    """Encrypt as a client would: (base64 sealed box, key_id)."""
    entry = st.github["keys"][scope]
    sealed = SealedBox(PublicKey(base64.b64decode(entry["key"]))).encrypt(plaintext.encode())
    return base64.b64encode(sealed).decode(), entry["key_id"]


def decrypt(st: State, key_id: str, encrypted_value: str) -> bytes | None:
    """The plaintext, or None when the value is not a sealed box for that key."""
    private = st.github["key_archive"].get(key_id)
    if private is None:
        return None
    try:
        raw = base64.b64decode(encrypted_value, validate=True)
        return SealedBox(PrivateKey(bytes.fromhex(private))).decrypt(raw)
    except (binascii.Error, ValueError, CryptoError):
        return None
