"""Ed25519 keys: generate, save (PEM, private 0600), load (PEM or 64 hex digits), fingerprint, sign, verify.

The signature is the raw 64-byte Ed25519 signature of the exact ``manifest.json`` bytes,
so ``openssl pkeyutl -verify -rawin -pubin -inkey KEY.pub -in manifest.json -sigfile
manifest.sig`` checks it too.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from xenoedge.export.bundle.errors import KeyFileError, SignatureError

from xenoedge.atomic import atomic_write, replace_synced, temp_path_beside

SIGNATURE_BYTES = 64
_HEX_KEY_RE = re.compile(r"^\s*([0-9a-fA-F]{64})\s*$")


def generate_keypair() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    """A fresh Ed25519 key pair (private, public)."""
    private = Ed25519PrivateKey.generate()
    return private, private.public_key()


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32 public key bytes."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Fingerprint: the first 16 hex digits of SHA-256 over the raw 32 public key bytes."""
    return hashlib.sha256(public_key_bytes(public_key)).hexdigest()[:16]


def save_private_key(
    path: str | os.PathLike, key: Ed25519PrivateKey, *, password: bytes | str | None = None, overwrite: bool = False
) -> Path:
    """Write ``key`` as PKCS#8 PEM (encrypted when ``password`` is given), mode 0600, atomically.

    Refuses to replace an existing file unless ``overwrite`` (a lost private key cannot be re-made).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path}: exists; refusing to overwrite a key")
    if isinstance(password, str):
        password = password.encode()
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    with temp_path_beside(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        replace_synced(tmp, path)
    return path


def load_private_key(path: str | os.PathLike, password: bytes | str | None = None) -> Ed25519PrivateKey:
    """Read a PEM private key; :class:`KeyFileError` if missing, encrypted without password, or not Ed25519."""
    path = Path(path)
    if isinstance(password, str):
        password = password.encode()
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=password or None)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except TypeError as exc:  # encrypted without a password, or a password for a clear key
        raise KeyFileError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a PEM private key or wrong password ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key ({type(key).__name__})")
    return key


def private_key_is_encrypted(path: str | os.PathLike) -> bool:
    """True when the PEM file at ``path`` holds an encrypted private key."""
    try:
        return b"ENCRYPTED" in Path(path).read_bytes()[:64]
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None


def save_public_key(path: str | os.PathLike, key: Ed25519PublicKey, *, fmt: str = "pem") -> Path:
    """Write ``key`` as SubjectPublicKeyInfo PEM (``fmt="pem"``) or 64 hex digits (``fmt="hex"``)."""
    if fmt == "pem":
        data = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    elif fmt == "hex":
        data = public_key_bytes(key).hex().encode() + b"\n"
    else:
        raise KeyFileError(f"unknown public key format {fmt!r}; use 'pem' or 'hex'")
    return atomic_write(path, lambda f: f.write(data))


def public_key_from_text(text: str | bytes) -> Ed25519PublicKey:
    """A public key from PEM text or 64 hex digits (the raw 32 bytes)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    match = _HEX_KEY_RE.match(text)
    if match:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(match.group(1)))
    try:
        key = serialization.load_pem_public_key(text.encode())
    except ValueError as exc:
        raise KeyFileError(f"not a PEM public key nor 64 hex digits ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"not an Ed25519 public key ({type(key).__name__})")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """Read a public key file: PEM or 64 hex digits."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    try:
        return public_key_from_text(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def sign_bytes(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data``."""
    return private_key.sign(data)


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is ``public_key``'s signature of ``data``."""
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"signature is {len(signature)} bytes, not {SIGNATURE_BYTES}")
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError(f"signature does not verify with key {key_id(public_key)}") from None
