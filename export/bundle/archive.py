"""Bundle archives (``NAME.xeb``): write, read, verify, extract safely, sign, inspect.

A bundle is an uncompressed POSIX (ustar) tar with one canonical layout:

1. ``manifest.json`` (first member), 2. ``manifest.sig`` (64-byte Ed25519 signature of the
manifest bytes; absent when unsigned), 3. every file the manifest lists, sorted by path
(``models/<target>/...``, ``selftest/...``). Headers: mode 0644, uid/gid 0, empty owner
names, mtime = the manifest's ``created_at``; zero padding; two zero blocks and zero fill
to a 10240-byte record. A reader accepts exactly that layout, so changing any byte of a
bundle is caught: a listed file by its SHA-256, the manifest by the signature, a header,
padding or trailer byte by the layout check. Only ``manifest.sig`` itself needs a key to
check (docs/bundles.md).

Why one file (~700 lines): the writer and the reader of one byte-exact format must agree on
every header, padding and trailer byte; keeping both beside the layout they share is what makes
the "any changed byte is caught" promise checkable by reading.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from xenoedge.export.bundle.errors import (
    ArchiveError,
    BundleError,
    IntegrityError,
    ManifestError,
    SignatureError,
    UnsafeArchiveError,
)
from xenoedge.export.bundle.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    SIGNATURE_ALGORITHM,
    SIGNATURE_NAME,
    Manifest,
    complete_manifest,
    dumps_manifest,
    listed_files,
    loads_manifest,
    member_path_problem,
    parse_created_at,
    validate_manifest,
)
from xenoedge.export.bundle.signing import SIGNATURE_BYTES, key_id, sign_bytes, verify_signature

from xenoedge.atomic import atomic_write, fsync_dir

BUNDLE_SUFFIX = ".xeb"
DEFAULT_MAX_MEMBERS = 256
DEFAULT_MAX_MEMBER_BYTES = 1 << 30  # 1 GiB
DEFAULT_MAX_TOTAL_BYTES = 2 << 30  # 2 GiB
BLOCK_BYTES = 512
RECORD_BYTES = 20 * BLOCK_BYTES
_CHUNK_BYTES = 1 << 20
_TAR_FORMAT = tarfile.USTAR_FORMAT


@dataclass(frozen=True)
class BundleFile:
    """One member to write: its path inside the bundle and either ``data`` or a ``source`` file."""

    path: str
    data: bytes | None = None
    source: Path | None = None


@dataclass(frozen=True)
class Limits:
    """What a reader accepts: member count, bytes per member, bytes in all members together."""

    max_members: int = DEFAULT_MAX_MEMBERS
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex of a whole file (the bundle image hash an upload announces)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- writing


def _header(name: str, size: int, mtime: int) -> bytes:
    """The canonical 512-byte ustar header of a member."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(_TAR_FORMAT, "utf-8", "strict")


@dataclass(frozen=True)
class _Member:
    name: str
    size: int
    sha256: str | None  # None: not hashed (manifest, signature)
    open: Callable[[], BinaryIO]


class _HashingReader:
    """Wrap a binary file: hash and count what is read through it."""

    def __init__(self, f: BinaryIO):
        self.f, self.digest, self.count = f, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.digest.update(data)
        self.count += len(data)
        return data


def _write_archive(f: BinaryIO, members: list[_Member], mtime: int) -> None:
    with tarfile.open(fileobj=f, mode="w", format=_TAR_FORMAT, encoding="utf-8") as tar:
        for member in members:
            info = tarfile.TarInfo.frombuf(_header(member.name, member.size, mtime), "utf-8", "strict")
            with member.open() as src:
                reader = _HashingReader(src)
                tar.addfile(info, reader)
            if member.sha256 is not None and (reader.digest.hexdigest() != member.sha256):
                raise IntegrityError(f"member {member.name!r}: its source changed while writing", member=member.name)


def _normalise_files(files: Mapping[str, bytes | Path | str] | Iterable[BundleFile]) -> dict[str, bytes | Path]:
    items = (
        [(f.path, f.data if f.data is not None else f.source) for f in files]
        if not isinstance(files, Mapping)
        else list(files.items())
    )
    out: dict[str, bytes | Path] = {}
    for name, source in items:
        problem = member_path_problem(name)
        if problem or name in (MANIFEST_NAME, SIGNATURE_NAME):
            raise ManifestError(f"files: {name!r} {problem or 'is reserved'}")
        if name in out:
            raise ManifestError(f"files: {name!r} given twice")
        if isinstance(source, (bytes, bytearray, memoryview)):
            out[name] = bytes(source)
        elif isinstance(source, (str, os.PathLike)):
            out[name] = Path(source)
        else:
            raise ManifestError(f"files: {name!r} must be bytes or a file path, got {type(source).__name__}")
    return out


def _size_and_sha256(source: bytes | Path) -> tuple[int, str]:
    if isinstance(source, bytes):
        return len(source), hashlib.sha256(source).hexdigest()
    try:
        return source.stat().st_size, file_sha256(source)
    except FileNotFoundError:
        raise ManifestError(f"files: {source} does not exist") from None


def _opener(source: bytes | Path) -> Callable[[], BinaryIO]:
    return (lambda: io.BytesIO(source)) if isinstance(source, bytes) else (lambda: open(source, "rb"))


def _signed_members(manifest: dict, signing_key: Ed25519PrivateKey | None) -> tuple[list[_Member], int]:
    """Members 1-2 (manifest, signature) and the members' mtime for a completed manifest."""
    manifest = dict(manifest)
    manifest.pop("signature", None)
    if signing_key is not None:
        manifest["signature"] = {"algorithm": SIGNATURE_ALGORITHM, "key_id": key_id(signing_key.public_key())}
    validate_manifest(manifest)
    data = dumps_manifest(manifest)
    members = [_Member(MANIFEST_NAME, len(data), None, _opener(data))]
    if signing_key is not None:
        signature = sign_bytes(signing_key, data)
        members.append(_Member(SIGNATURE_NAME, len(signature), None, _opener(signature)))
    return members, int(parse_created_at(manifest["created_at"]).timestamp())


def write_bundle(
    path: str | os.PathLike,
    manifest: dict,
    files: Mapping[str, bytes | Path | str] | Iterable[BundleFile],
    *,
    signing_key: Ed25519PrivateKey | None = None,
) -> Path:
    """Write a bundle atomically; returns its path.

    ``files`` maps member path (``models/<target>/<file>``, ``selftest/<file>``) to bytes or a
    source file. Sizes and SHA-256 are computed into the manifest's target and self-test entries
    (see :func:`xenoedge.export.bundle.manifest.complete_manifest` for the defaults); the manifest is
    validated before a byte is written. With ``signing_key`` the bundle is signed.
    """
    sources = _normalise_files(files)
    given = {name: _size_and_sha256(source) for name, source in sources.items()}
    complete = complete_manifest(manifest, given)
    members, mtime = _signed_members(complete, signing_key)
    for name in sorted(listed_files(complete)):
        size, sha256 = given[name]
        members.append(_Member(name, size, sha256, _opener(sources[name])))
    return atomic_write(path, lambda f: _write_archive(f, members, mtime))


# --------------------------------------------------------------------------- reading


#: ``on_step(operation, path)``: called right after each durable filesystem step of an
#: extraction (``mkdir``, ``write``, ``fsync``, ``fsync-dir``, ``rename``), for crash tests.
StepCallback = Callable[[str, Path], None]


def _no_step(operation: str, path: Path) -> None:
    return None


class _Sink:
    """Writes members under a fresh staging folder (regular files only, never following links)."""

    def __init__(self, root: Path, on_step: StepCallback = _no_step):
        self.root = root
        self.folders: set[Path] = {root}
        self.on_step = on_step

    def open(self, name: str) -> BinaryIO:
        target = self.root.joinpath(*name.split("/"))
        for folder in reversed(target.parents):
            if folder in self.folders or self.root not in (folder, *folder.parents):
                continue
            folder.mkdir(mode=0o755)
            self.folders.add(folder)
            self.on_step("mkdir", folder)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        return os.fdopen(os.open(target, flags, 0o644), "wb")

    def sync(self) -> None:
        for folder in sorted(self.folders, key=lambda p: -len(p.parts)):
            fsync_dir(folder)
            self.on_step("fsync-dir", folder)


def _check_member(info: tarfile.TarInfo, label: str) -> None:
    """Refuse anything but a regular file with a safe relative name."""
    name = info.name
    kind = (
        "a symlink"
        if info.issym()
        else "a hardlink"
        if info.islnk()
        else "a device file"
        if info.isdev()
        else "a directory"
        if info.isdir()
        else None
    )
    if kind is None and info.type != tarfile.REGTYPE:
        kind = f"of tar type {info.type!r}, not a regular file"
    if kind:
        raise UnsafeArchiveError(f"{label}: member {name!r} is {kind}; bundles hold regular files only", member=name)
    problem = member_path_problem(name)
    if problem:
        raise UnsafeArchiveError(f"{label}: member {name!r} {problem}", member=name)


def _read_member(
    tar: tarfile.TarFile, info: tarfile.TarInfo, out: BinaryIO | None, limit: int | None = None
) -> tuple[bytes, str]:
    """(data if ``limit`` else b"", SHA-256 hex) of a member, streamed into ``out`` if given."""
    src = tar.extractfile(info)
    digest, kept, left = hashlib.sha256(), [], info.size
    while left:
        chunk = src.read(min(left, _CHUNK_BYTES))
        if not chunk:
            raise ArchiveError(f"member {info.name!r}: truncated", member=info.name)
        left -= len(chunk)
        digest.update(chunk)
        if limit is not None:
            kept.append(chunk)
        if out is not None:
            out.write(chunk)
    return b"".join(kept), digest.hexdigest()


class _Scan:
    """One pass over an open bundle: every check, optionally writing members to a sink."""

    def __init__(
        self,
        f: BinaryIO,
        label: str,
        *,
        public_key: Ed25519PublicKey | None,
        require_signature: bool,
        limits: Limits,
        sink: _Sink | None = None,
    ):
        self.f, self.label, self.public_key, self.require_signature = f, label, public_key, require_signature
        self.limits, self.sink = limits, sink
        self.manifest: Manifest | None = None
        self.manifest_bytes: bytes | None = None
        self.signature: bytes | None = None
        self.layout: list[tuple[int, int, int, str, int]] = []  # offset, data offset, size, name, mtime

    def run(self) -> Manifest:
        try:
            tar = tarfile.open(fileobj=self.f, mode="r:", encoding="utf-8", errors="strict")
        except tarfile.TarError as exc:
            raise ArchiveError(f"{self.label}: not an uncompressed tar bundle ({exc})") from None
        seen: set[str] = set()
        folded: dict[str, tuple[str, str]] = {}  # case-folded path -> (member name, "file"|"folder")
        total = 0
        try:
            while (info := tar.next()) is not None:
                name = info.name
                if len(seen) >= self.limits.max_members:
                    raise UnsafeArchiveError(
                        f"{self.label}: member {name!r} is past the limit of {self.limits.max_members} members",
                        member=name,
                    )
                _check_member(info, self.label)
                if name in seen:
                    raise UnsafeArchiveError(f"{self.label}: member {name!r} appears twice", member=name)
                self._check_collision(name, folded)
                seen.add(name)
                if info.size > self.limits.max_member_bytes:
                    raise UnsafeArchiveError(
                        f"{self.label}: member {name!r} is {info.size} bytes, over the limit of "
                        f"{self.limits.max_member_bytes}",
                        member=name,
                    )
                total += info.size
                if total > self.limits.max_total_bytes:
                    raise UnsafeArchiveError(
                        f"{self.label}: member {name!r} takes the total past {self.limits.max_total_bytes} bytes",
                        member=name,
                    )
                self.layout.append((info.offset, info.offset_data, info.size, name, info.mtime))
                self._member(tar, info, len(seen))
        except (tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{self.label}: corrupt tar archive ({exc})") from None
        finally:
            tar.close()
        if self.manifest is None:
            self._open_manifest()
        missing = sorted(set(listed_files(self.manifest)) - seen)
        if missing:
            raise IntegrityError(f"{self.label}: member {missing[0]!r} is listed but missing", member=missing[0])
        self._check_layout()
        return self.manifest

    def _check_collision(self, name: str, folded: dict[str, tuple[str, str]]) -> None:
        """Refuse a member that would land on another one's path: equal but for letter case (a
        FAT/exFAT SD card, macOS), or a file where another member needs a folder (and back)."""
        parts = name.split("/")
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth]).casefold()
            kind = "file" if depth == len(parts) else "folder"
            other = folded.get(key)
            if other is None:
                folded[key] = (name, kind)
            elif other[1] == "file" or kind == "file":
                raise UnsafeArchiveError(
                    f"{self.label}: member {name!r} collides with member {other[0]!r} "
                    "(same path but for letter case, or a file where a folder must be)",
                    member=name,
                )

    def _member(self, tar: tarfile.TarFile, info: tarfile.TarInfo, index: int) -> None:
        name = info.name
        if index == 1:
            if name != MANIFEST_NAME:
                raise ArchiveError(f"{self.label}: first member is {name!r}, not {MANIFEST_NAME}", member=name)
            if info.size > MAX_MANIFEST_BYTES:
                raise ArchiveError(f"{self.label}: {MANIFEST_NAME} is over {MAX_MANIFEST_BYTES} bytes", member=name)
            self.manifest_bytes = self._copy(tar, info, keep=True)[0]
            return
        if index == 2 and name == SIGNATURE_NAME:
            if info.size != SIGNATURE_BYTES:
                raise SignatureError(
                    f"{self.label}: {SIGNATURE_NAME} is {info.size} bytes, not {SIGNATURE_BYTES}", member=name
                )
            self.signature = self._copy(tar, info, keep=True)[0]
            return
        if self.manifest is None:
            self._open_manifest()
        entry = listed_files(self.manifest).get(name)
        if entry is None:
            raise UnsafeArchiveError(f"{self.label}: member {name!r} is not listed in the manifest", member=name)
        if info.size != entry["size"]:
            raise IntegrityError(
                f"{self.label}: member {name!r} is {info.size} bytes, the manifest says {entry['size']}", member=name
            )
        if self._copy(tar, info, keep=False)[1] != entry["sha256"]:
            raise IntegrityError(f"{self.label}: member {name!r}: SHA-256 differs from the manifest", member=name)

    def _copy(self, tar: tarfile.TarFile, info: tarfile.TarInfo, *, keep: bool) -> tuple[bytes, str]:
        if self.sink is None:
            return _read_member(tar, info, None, info.size if keep else None)
        with self.sink.open(info.name) as out:
            result = _read_member(tar, info, out, info.size if keep else None)
            out.flush()
            path = self.sink.root.joinpath(*info.name.split("/"))
            self.sink.on_step("write", path)
            os.fsync(out.fileno())
            self.sink.on_step("fsync", path)
        return result

    def _open_manifest(self) -> None:
        """Check the signature over the raw bytes, then parse and validate the manifest."""
        label, data, signature = self.label, self.manifest_bytes, self.signature
        if self.public_key is not None or self.require_signature:
            if signature is None:
                raise SignatureError(f"{label}: unsigned (no {SIGNATURE_NAME}) but a signature is required")
        if signature is not None and self.public_key is not None:
            try:
                verify_signature(self.public_key, signature, data)
            except SignatureError:
                claimed = _peek_key_id(data)
                given = key_id(self.public_key)
                if claimed and claimed != given:
                    raise SignatureError(
                        f"{label}: signed by key {claimed}, not by the given key {given}", member=SIGNATURE_NAME
                    ) from None
                raise SignatureError(
                    f"{label}: {SIGNATURE_NAME} does not verify {MANIFEST_NAME} with key {given} (tampered?)",
                    member=MANIFEST_NAME,
                ) from None
        try:
            manifest = loads_manifest(data)
        except ManifestError as exc:
            raise ManifestError(f"{label}: {exc}", member=MANIFEST_NAME) from None
        claimed = manifest.get("signature")
        if claimed and signature is None:
            raise SignatureError(
                f"{label}: the manifest names signing key {claimed['key_id']} but {SIGNATURE_NAME} is missing",
                member=SIGNATURE_NAME,
            )
        if signature is not None and not claimed:
            raise SignatureError(
                f"{label}: {SIGNATURE_NAME} present but the manifest names no key", member=SIGNATURE_NAME
            )
        manifest.signed = signature is not None
        manifest.signature_verified = signature is not None and self.public_key is not None
        manifest.key_id = key_id(self.public_key) if manifest.signature_verified else (claimed or {}).get("key_id")
        self.manifest = manifest

    def _check_layout(self) -> None:
        """Every byte outside member data must be what the canonical writer puts there."""
        f, pos = self.f, 0
        for offset, data_offset, size, name, mtime in self.layout:
            f.seek(offset)
            header = f.read(BLOCK_BYTES)
            if offset != pos or data_offset != offset + BLOCK_BYTES or header != _header(name, size, mtime):
                raise ArchiveError(
                    f"{self.label}: member {name!r}: header at byte {offset} is not canonical", member=name
                )
            end = data_offset + size
            pos = -(-end // BLOCK_BYTES) * BLOCK_BYTES
            f.seek(end)
            if f.read(pos - end).count(0) != pos - end:
                raise ArchiveError(f"{self.label}: member {name!r}: non-zero padding after its data", member=name)
        f.seek(0, os.SEEK_END)
        length = f.tell()
        expected = -(-(pos + 2 * BLOCK_BYTES) // RECORD_BYTES) * RECORD_BYTES
        if length != expected:
            raise ArchiveError(f"{self.label}: {length} bytes; a canonical bundle of these members has {expected}")
        f.seek(pos)
        while pos < length:
            chunk = f.read(min(_CHUNK_BYTES, length - pos))
            if chunk.count(0) != len(chunk):
                at = pos + next(i for i, b in enumerate(chunk) if b)
                raise ArchiveError(f"{self.label}: non-zero byte at {at} in the end-of-archive blocks")
            pos += len(chunk)


def _peek_key_id(data: bytes) -> str | None:
    try:
        import json

        return json.loads(data)["signature"]["key_id"]
    except Exception:
        return None


def _limits(max_total_bytes: int, max_member_bytes: int, max_members: int) -> Limits:
    return Limits(max_members=max_members, max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes)


def _open(path: str | os.PathLike) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such bundle") from None
    except IsADirectoryError:
        raise ArchiveError(f"{path}: is a folder, not a bundle file") from None


def verify_bundle(
    path: str | os.PathLike,
    *,
    public_key: Ed25519PublicKey | None = None,
    require_signature: bool = False,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Manifest:
    """Check a bundle completely without writing anything; returns its manifest.

    Checks: canonical tar layout, manifest schema, every listed member present with its size
    and SHA-256, no unlisted, duplicate, linked or special member, the limits; and the
    signature when ``public_key`` is given (``require_signature`` alone only demands that one is
    present: pass the trusted key to have it checked). Raises a :class:`BundleError` subclass
    naming the member.
    """
    limits = _limits(max_total_bytes, max_member_bytes, max_members)
    with _open(path) as f:
        return _Scan(f, str(path), public_key=public_key, require_signature=require_signature, limits=limits).run()


def extract_bundle(
    path: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    public_key: Ed25519PublicKey | None = None,
    require_signature: bool = False,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
    on_step: StepCallback | None = None,
) -> Path:
    """Verify, then unpack into the new folder ``dest``; returns ``dest``.

    Reads the bundle through one open file: a full :func:`verify_bundle` pass first, then a
    second pass that re-checks everything and re-hashes each member as it is written into a
    staging folder ``.<dest name>.*.partial`` beside ``dest``, which is fsynced and renamed to
    ``dest`` only when all is well. On any error the staging folder is removed and ``dest``
    does not exist. ``dest`` must not exist beforehand. ``on_step(operation, path)`` is called
    after every durable step (``mkdir``, ``write`` and ``fsync`` of each member, ``fsync-dir``,
    ``rename``); the flashing crash tests stop the process there.
    """
    step = on_step or _no_step
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise BundleError(f"{dest}: already exists; extract into a new folder")
    limits = _limits(max_total_bytes, max_member_bytes, max_members)
    keys = dict(public_key=public_key, require_signature=require_signature, limits=limits)
    with _open(path) as f:
        _Scan(f, str(path), **keys).run()
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
        try:
            os.chmod(staging, 0o755)
            f.seek(0)
            step("mkdir", staging)
            sink = _Sink(staging, step)
            _Scan(f, str(path), sink=sink, **keys).run()
            sink.sync()
            os.rename(staging, dest)
            step("rename", dest)
        except (Exception, KeyboardInterrupt):  # a crash (power cut) leaves it for recovery to remove
            shutil.rmtree(staging, ignore_errors=True)
            raise
    fsync_dir(dest.parent)
    step("fsync-dir", dest.parent)
    return dest


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The validated manifest of a bundle file (first member only, nothing hashed), or of an
    extracted bundle folder (``path/manifest.json``). Signatures are not checked here."""
    path = Path(path)
    if path.is_dir():
        try:
            manifest = loads_manifest((path / MANIFEST_NAME).read_bytes())
        except FileNotFoundError:
            raise ArchiveError(f"{path}: no {MANIFEST_NAME} in this folder") from None
        manifest.signed = (path / SIGNATURE_NAME).is_file()
        manifest.key_id = (manifest.get("signature") or {}).get("key_id")
        return manifest
    with _open(path) as f:
        try:
            with tarfile.open(fileobj=f, mode="r:", encoding="utf-8", errors="strict") as tar:
                info = tar.next()
                if info is None or info.name != MANIFEST_NAME:
                    raise ArchiveError(f"{path}: first member is not {MANIFEST_NAME}")
                _check_member(info, str(path))
                if info.size > MAX_MANIFEST_BYTES:
                    raise ArchiveError(f"{path}: {MANIFEST_NAME} is over {MAX_MANIFEST_BYTES} bytes")
                data = _read_member(tar, info, None, info.size)[0]
                second = tar.next()
        except (tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{path}: not an uncompressed tar bundle ({exc})") from None
    try:
        manifest = loads_manifest(data)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}", member=MANIFEST_NAME) from None
    manifest.signed = second is not None and second.name == SIGNATURE_NAME
    manifest.key_id = (manifest.get("signature") or {}).get("key_id")
    return manifest


def sign_bundle(
    path: str | os.PathLike, private_key: Ed25519PrivateKey, *, out: str | os.PathLike | None = None
) -> Path:
    """Sign (or re-sign) a bundle: verify its integrity, name the key in the manifest, write
    ``manifest.sig``; atomically, in place or to ``out``. Returns the written path."""
    path = Path(path)
    out = Path(out) if out is not None else path
    with _open(path) as f:
        manifest = _Scan(f, str(path), public_key=None, require_signature=False, limits=Limits()).run()
        members, mtime = _signed_members(dict(manifest), private_key)
        f.seek(0)
        with tarfile.open(fileobj=f, mode="r:", encoding="utf-8") as tar:
            infos = {info.name: info for info in tar.getmembers()}
            for name, entry in sorted(listed_files(manifest).items()):
                members.append(_Member(name, entry["size"], entry["sha256"], partial(tar.extractfile, infos[name])))
            return atomic_write(out, lambda g: _write_archive(g, members, mtime))


def inspect_bundle(path: str | os.PathLike, *, public_key: Ed25519PublicKey | None = None) -> dict:
    """A JSON-able summary for people and the CLI; integrity and signature are checked, not raised.

    Raises only when the manifest itself cannot be read.
    """
    path = Path(path)
    manifest = read_manifest(path)
    integrity: dict = {"ok": True, "error": None}
    verified = None
    try:
        checked = verify_bundle(path, public_key=public_key)
        verified = checked.signature_verified if public_key is not None else None
    except BundleError as exc:
        integrity = {"ok": False, "error": str(exc)}
        if isinstance(exc, SignatureError):
            verified = False
    targets = []
    for name, target in manifest["targets"].items():
        extra = {k: v for k, v in target.items() if k not in ("runtime", "precision", "files", "model")}
        targets.append(
            {
                "name": name,
                "runtime": target["runtime"],
                "precision": target["precision"],
                "model": target["model"],
                "files": len(target["files"]),
                "bytes": sum(e["size"] for e in target["files"]),
                **extra,
            }
        )
    selftest = manifest["selftest"]
    wavelengths = manifest["input"]["wavelengths_nm"]
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "name": manifest["name"],
        "version": manifest["version"],
        "created_at": manifest["created_at"],
        "description": manifest.get("description"),
        "sensor": manifest["sensor"],
        "input": {k: v for k, v in manifest["input"].items() if k != "wavelengths_nm"}
        | {"bands": len(wavelengths), "wavelength_range_nm": [wavelengths[0], wavelengths[-1]]},
        "labels": [label["name"] for label in manifest["labels"]],
        "targets": targets,
        "accuracy": manifest["accuracy"],
        "signature": {"present": manifest.signed, "key_id": manifest.key_id, "verified": verified},
        "selftest": {
            "input": selftest["input"],
            "expected": selftest["expected"],
            "min_agreement": selftest["min_agreement"],
            "bytes": sum(e["size"] for e in selftest["files"]),
        },
        "provenance": manifest["provenance"],
        "integrity": integrity,
    }
