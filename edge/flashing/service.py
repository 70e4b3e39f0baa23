"""The daemon's flashing service: answers the host's flashing packets on the control channel.

``FlashService.handle(packet)`` is called by the daemon's control thread for every inbound
packet (docs/protocol.md, types 6 to 14). Uploads go to ``UploadManager`` (answered at once
with an UPLOAD_ACK); UPLOAD_END and ROLLBACK_REQUEST start one background job (install or
rollback, never two at once) so the control thread keeps answering INFO and refusing other
work with ``BUSY`` meanwhile, and the frame loop keeps serving masks with the active model.
After ``install_bundle`` (or ``store.rollback``) switched the slot, ``activate(slot)`` (the
daemon) loads the new engine and hot-swaps it in; only then the host gets its result.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xenoedge.edge.flashing.errors import (
    BundleRejected,
    FlashError,
    InstallBusyError,
    NoSpaceError,
    RollbackError,
    SelfTestFailed,
)
from xenoedge.edge.flashing.slots import slot_dict
from xenoedge.edge.flashing.upload import UploadError, UploadLimits, UploadManager
from xenoedge.edge.protocol.flash import (
    FlashCode,
    decode_upload_begin,
    decode_upload_chunk,
    decode_upload_end,
    info_payload,
    result_payload,
    upload_ack_payload,
)
from xenoedge.edge.protocol.packets import Packet, PacketType, ProtocolError

__all__ = ["FlashService", "flash_code", "slot_dict"]

#: BundleRejected.reason -> wire result code
REASON_CODES = {
    "sha256": FlashCode.SHA256_MISMATCH,
    "signature": FlashCode.SIGNATURE,
    "size": FlashCode.TOO_LARGE,
    "incompatible": FlashCode.INCOMPATIBLE,
}


def flash_code(exc: BaseException) -> FlashCode:
    """The wire result code for an install/upload/rollback failure."""
    if isinstance(exc, UploadError):
        return exc.code
    if isinstance(exc, BundleRejected):
        return REASON_CODES.get(exc.reason, FlashCode.BAD_BUNDLE)
    if isinstance(exc, SelfTestFailed):
        return FlashCode.SELFTEST_FAILED
    if isinstance(exc, NoSpaceError):
        return FlashCode.NO_SPACE
    if isinstance(exc, InstallBusyError):
        return FlashCode.BUSY
    if isinstance(exc, RollbackError):
        return FlashCode.NO_ROLLBACK
    return FlashCode.INTERNAL


class FlashService:
    """Flashing on the device side (see the module doc).

    store: the ``SlotStore``; policy: the ``InstallPolicy`` (trusted key, sensor, runtimes, size);
    send(ptype, payload): writes one reply packet (thread-safe); activate(slot, why): loads and
    hot-swaps the slot's bundle, returns details for the result (e.g. the self-test), raises on
    failure; device_info(): the daemon's part of INFO (engines, sensor); clock: monotonic seconds.
    """

    def __init__(
        self,
        store: Any,
        policy: Any,
        *,
        send: Callable[[PacketType, bytes], None],
        activate: Callable[[Any, str], dict[str, Any]],
        device_info: Callable[[], dict[str, Any]] = dict,
        limits: UploadLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] = lambda line: None,
    ):
        self.store, self.policy = store, policy
        self.limits = limits or UploadLimits(max_bundle_bytes=getattr(policy, "max_bundle_bytes", 64 * 2**20))
        self.uploads = UploadManager(store.uploads_dir, self.limits, clock=clock)
        self._send, self._activate, self._device_info = send, activate, device_info
        self._log = log
        self._job: threading.Thread | None = None
        self._lock = threading.Lock()

    # ---- dispatch -------------------------------------------------------------------------
    def handle(self, packet: Packet) -> None:
        """Answer one inbound packet; device-to-host types and unknown ones are ignored."""
        try:
            if packet.type == PacketType.UPLOAD_BEGIN:
                self._on_begin(packet)
            elif packet.type == PacketType.UPLOAD_CHUNK:
                self._on_chunk(packet)
            elif packet.type == PacketType.UPLOAD_END:
                self._on_end(packet)
            elif packet.type == PacketType.INFO_REQUEST:
                self._send(PacketType.INFO, info_payload(self.info()))
            elif packet.type == PacketType.ROLLBACK_REQUEST:
                self._on_rollback()
        except ProtocolError as exc:  # a malformed payload that passed the CRC: say so
            reply = PacketType.ROLLBACK_RESULT if packet.type == PacketType.ROLLBACK_REQUEST else None
            if packet.type in (PacketType.UPLOAD_BEGIN, PacketType.UPLOAD_CHUNK):
                self._ack(FlashCode.BAD_REQUEST)
            else:
                self._result(reply or PacketType.UPLOAD_RESULT, FlashCode.BAD_REQUEST, str(exc))

    @property
    def busy(self) -> bool:
        """An install or rollback is running."""
        return self._job is not None and self._job.is_alive()

    def _ack(self, code: FlashCode) -> None:
        ack = self.uploads.ack(code)
        self._send(PacketType.UPLOAD_ACK, upload_ack_payload(code, ack.next_offset, ack.total_size, ack.max_chunk))

    def _result(self, ptype: PacketType, code: FlashCode, message: str, **details: Any) -> None:
        self._send(ptype, result_payload(code, {"message": message, **details}))

    def _on_begin(self, packet: Packet) -> None:
        begin = decode_upload_begin(packet.payload)
        refusal = self._untrusted()
        if refusal is not None:  # no key, no opt-in: refused before a byte is sent, not after the upload
            self._ack(FlashCode.SIGNATURE)
            self._result(PacketType.UPLOAD_RESULT, FlashCode.SIGNATURE, f"BundleRejected: {refusal}")
            self._log(f"upload of {begin.version or 'a bundle'} refused: {refusal}")
            return
        if self.busy:
            self._ack(FlashCode.BUSY)
            self._result(PacketType.UPLOAD_RESULT, FlashCode.BUSY, "an install or rollback is running; try again")
            return
        try:
            self.uploads.begin(begin)
        except UploadError as exc:
            self._ack(exc.code)
            self._result(PacketType.UPLOAD_RESULT, exc.code, str(exc))
            self._log(f"upload refused: {exc}")
            return
        self._ack(FlashCode.OK)

    def _on_chunk(self, packet: Packet) -> None:
        chunk = decode_upload_chunk(packet.payload)
        try:
            ack = self.uploads.chunk(chunk)
        except UploadError as exc:
            self._ack(exc.code)
            if exc.code not in (FlashCode.NO_UPLOAD,):
                self._result(PacketType.UPLOAD_RESULT, exc.code, str(exc))
            return
        self._ack(ack.code)

    def _on_end(self, packet: Packet) -> None:
        sha = decode_upload_end(packet.payload)
        if self.busy:
            self._result(PacketType.UPLOAD_RESULT, FlashCode.BUSY, "an install or rollback is running")
            return
        session = self.uploads.session
        version, total = (session.version, session.total_size) if session else ("", 0)
        try:
            path = self.uploads.complete(sha)
        except UploadError as exc:
            self._result(PacketType.UPLOAD_RESULT, exc.code, str(exc))
            self._log(f"upload failed: {exc}")
            return
        # accepted: the install starts; its UPLOAD_RESULT follows when it is done
        self._send(PacketType.UPLOAD_ACK, upload_ack_payload(FlashCode.OK, total, total, self.limits.max_chunk))
        self._start(self._install_job, path, version, sha.hex())

    def _on_rollback(self) -> None:
        if self.busy:
            self._result(PacketType.ROLLBACK_RESULT, FlashCode.BUSY, "an install or rollback is running")
            return
        self._start(self._rollback_job)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._job = threading.Thread(target=target, args=args, name="xenoedge-flash", daemon=True)
            self._job.start()

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the running install/rollback (tests, shutdown)."""
        job = self._job
        if job is not None:
            job.join(timeout_s)

    # ---- jobs -----------------------------------------------------------------------------
    def _install_job(self, path: Path, version: str, sha256: str) -> None:
        from xenoedge.edge.flashing.install import install_bundle

        started = time.monotonic()
        try:
            report = install_bundle(self.store, path, self.policy, expected_sha256=sha256)
        except Exception as exc:  # typed FlashErrors, and anything unexpected: the active model stays
            code = flash_code(exc)
            self._log(f"install of {version or path.name} refused: {exc}")
            self._result(PacketType.UPLOAD_RESULT, code, f"{type(exc).__name__}: {exc}")
            return
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        installed = self.store.active()
        try:
            details = self._activate(installed, "install")
        except Exception as exc:  # could not load it in the daemon: go back, say why
            message = f"installed {installed.describe()} but the daemon could not load it: {exc}"
            try:
                back = self.store.rollback(message)
                self._activate(back, "rollback")
                message += f"; rolled back to {back.describe()}"
            except Exception as again:
                message += f"; rollback failed too: {again}"
            self._result(PacketType.UPLOAD_RESULT, FlashCode.SELFTEST_FAILED, message)
            return
        self._result(
            PacketType.UPLOAD_RESULT,
            FlashCode.OK,
            f"installed {report.installed.name} {report.installed.version} in slot {report.slot}",
            installed=slot_dict(report.installed),
            previous=slot_dict(report.previous),
            selftest={**dict(report.selftest or {}), **details.get("selftest", {})},
            seconds=round(time.monotonic() - started, 3),
            install_seconds=round(float(report.seconds), 3),
        )

    def _rollback_job(self) -> None:
        try:
            target = self.store.rollback("rollback requested by the host")
            self._activate(target, "rollback")
        except Exception as exc:
            self._result(PacketType.ROLLBACK_RESULT, flash_code(exc), f"{type(exc).__name__}: {exc}")
            return
        self._result(
            PacketType.ROLLBACK_RESULT,
            FlashCode.OK,
            f"rolled back to {target.describe()}",
            active=slot_dict(target),
            reason="requested by the host",
        )

    def _untrusted(self) -> str | None:
        """Why every install is refused (no trusted key, no ``allow_unsigned``), or None."""
        from xenoedge.edge.flashing.install import refuse_without_trust

        try:
            refuse_without_trust(self.policy)
        except FlashError as exc:
            return str(exc)
        return None

    # ---- info -------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The INFO object (docs/protocol.md): slots, engines, sensor, free space, upload held, limits,
        and which bundles install (``allow_unsigned``, ``trusted_key_id``: ``signature_fields``)."""
        from xenoedge.edge.flashing.install import signature_fields

        active, inactive = self.store.active(), self.store.inactive()
        info = {
            "active": slot_dict(active) and {**slot_dict(active), "good": bool(active.good)},
            "inactive": slot_dict(inactive) and {**slot_dict(inactive), "good": bool(inactive.good)},
            "free_bytes": int(self.store.free_bytes()),
            "upload": self.uploads.status(),
            "max_bundle_bytes": self.limits.max_bundle_bytes,
            "max_chunk": self.limits.max_chunk,
            "busy": self.busy,
            **signature_fields(
                getattr(self.policy, "trusted_public_key", None), getattr(self.policy, "allow_unsigned", False)
            ),
        }
        info.update(self._device_info())
        return info

    def close(self) -> None:
        """Wait briefly for a running job, then keep what was received for a resume after restart."""
        self.wait(30.0)
        self.uploads.close()
