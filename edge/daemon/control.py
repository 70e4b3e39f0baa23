"""The control channel: flashing requests and replies over the daemon's link.

Owns the control thread (reads the link, decodes packets, hands them to the flashing service
``xenoedge.edge.flashing.service.FlashService``), the reply thread (writes the answers, so the reader
never waits for the line), the inbound decoder's statistics (``stats``), the report of an
automatic rollback (ROLLBACK_RESULT), and what the device says about itself: the HELLO fields
(``hello``) and the daemon's part of INFO (``device_info``).

It talks to: the model manager (``xenoedge.edge.daemon.models.ModelManager``: its slot store, install
policy and read-only state: ``sensor``, ``manifest``, ``slot``, ``engine``, ``maintenance``,
``model_id``, ``camera_id``); the daemon's ``Events`` (flashing log lines and failed requests
go to the frame loop to report); the wire-protocol sink under the daemon's sink; and the
``activate`` callback the coordinator gives it (a good install or rollback starts serving).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xenoedge.edge.config import DaemonConfig, signature_fields
from xenoedge.edge.daemon.events import Events
from xenoedge.edge.daemon.pipeline import protocol_sink
from xenoedge.edge.engines import ENGINES

from xenoedge.errors import XenoedgeError

if TYPE_CHECKING:
    from xenoedge.edge.daemon.models import ModelManager

__all__ = ["ControlChannel", "hello_fields"]


def hello_fields(models: ModelManager, config: DaemonConfig) -> dict:
    """The HELLO: the model served (or maintenance mode and why), sensor, camera, engine, labels,
    and the device's install policy (``allow_unsigned``, ``trusted_key_id``)."""
    if models.maintenance is not None:
        sensor = models.sensor
        return {
            "model_id": "",
            "model_name": None,
            "model_version": None,
            "sensor": sensor.name if sensor else None,
            "sensor_signature": sensor.signature if sensor else None,
            "camera_id": None,
            "engine": None,
            "maintenance": {"reason": models.maintenance},
            **signature_fields(config),
        }
    sensor, manifest, slot = models.sensor, models.manifest, models.slot
    h, w, _ = sensor.cube_shape
    slot_fields = {"model_sha256": slot.sha256, "slot": slot.slot} if slot is not None else {}
    return {
        **slot_fields,
        "model_id": models.model_id,
        "model_name": manifest["name"],
        "model_version": manifest["version"],
        "sensor": sensor.name,
        "sensor_signature": sensor.signature,
        "camera_id": models.camera_id,
        "engine": models.engine.name,
        "width": w,
        "height": h,
        "n_classes": len(manifest["labels"]),
        "labels": list(manifest["labels"]),
        **signature_fields(config),
    }


class ControlChannel:
    """Flashing over the daemon's link: a reading thread and a replying thread (see the module
    docstring). ``activate(slot, why) -> dict``: start serving a slot just installed or rolled
    back to (``FlashService``'s ``activate``)."""

    def __init__(
        self,
        config: DaemonConfig,
        sink: Any,
        models: ModelManager,
        events: Events,
        *,
        activate: Callable[[Any, str], dict],
    ):
        self.config = config
        self.sink = sink
        self.models = models
        self.events = events
        self._activate = activate
        self.flash = None
        self._protocol = None
        self._control_thread: threading.Thread | None = None
        self._reply_thread: threading.Thread | None = None
        self._replies: queue.Queue = queue.Queue()  # flashing answers, written by the reply thread
        self._reply_stop = threading.Event()
        self._control_stop = threading.Event()
        self.stats = None  # DecoderStats of the inbound control channel, once it runs

    def hello(self) -> dict:
        return hello_fields(self.models, self.config)

    def start(self) -> None:
        """With a state folder and a wire-protocol sink whose link reads: answer flashing packets."""
        protocol = protocol_sink(self.sink)
        if protocol is None:
            return
        self._protocol = protocol
        models = self.models
        if models.store is None or not callable(getattr(protocol.link, "read", None)):
            return
        from xenoedge.edge.flashing.service import FlashService
        from xenoedge.edge.flashing.upload import UploadLimits

        self.flash = FlashService(
            models.store,
            models.install_policy(models.sensor.signature if models.sensor is not None else None),
            send=lambda ptype, payload: self._replies.put((ptype, payload)),
            activate=self._activate,
            device_info=self.device_info,
            limits=UploadLimits(max_bundle_bytes=self.config.max_bundle_bytes, timeout_s=self.config.upload_timeout_s),
            log=lambda line: self.events.later("bundle", line, None),
        )
        self._control_stop.clear()
        self._reply_stop.clear()
        self._control_thread = threading.Thread(target=self._control_loop, name="xenoedge-control", daemon=True)
        self._reply_thread = threading.Thread(target=self._reply_loop, name="xenoedge-replies", daemon=True)
        self._control_thread.start()
        self._reply_thread.start()

    def refresh_policy(self) -> None:
        """The sensor is known now (maintenance mode ended): installs check against it."""
        if self.flash is not None:
            self.flash.policy = self.models.install_policy(self.models.sensor.signature)

    def _reply_loop(self) -> None:
        """Write the flashing answers. Apart from the reading thread, so that the device keeps
        reading what the host sends while a write waits for the line (behind a mask frame, or a
        host that is itself busy writing): a device that stops reading can deadlock the link."""
        while not self._reply_stop.is_set() or not self._replies.empty():
            try:
                ptype, payload = self._replies.get(timeout=0.1)
            except queue.Empty:
                continue
            self._protocol.send_packet(ptype, payload)

    def _control_loop(self) -> None:
        from xenoedge.edge.protocol.decoder import StreamDecoder

        link = self._protocol.link
        decoder = StreamDecoder(max_payload=self.flash.limits.max_chunk + 1024)
        self.stats = decoder.stats  # inbound: packets, CRC and framing errors (DecoderStats)
        while not self._control_stop.is_set():
            try:
                data = link.read(65536, timeout_s=0.1)
            except XenoedgeError:  # the link was closed under us: shutting down
                return
            except Exception:  # a link bug must not end the control channel
                self._control_stop.wait(0.1)
                continue
            if not data:
                continue
            for packet in decoder.feed(data):
                try:
                    self.flash.handle(packet)
                except Exception as exc:  # keep answering; the frame loop reports it
                    self.events.later("bundle", f"flashing request failed: {type(exc).__name__}: {exc}", None)

    def device_info(self) -> dict:
        """The daemon's part of INFO: engines installed here, the camera's sensor, the model serving."""
        models = self.models
        sensor = models.sensor
        maintenance = models.maintenance
        return {
            "engines": {name: list(kind.installed()) for name, kind in ENGINES.items()},
            "sensor": {"name": sensor.name, "signature": sensor.signature} if sensor is not None else None,
            "serving": {
                "model": None if maintenance else models.model_id,
                "engine": models.engine.name if models.engine and not maintenance else None,
            },
            "maintenance": {"reason": maintenance} if maintenance else None,
        }

    def report_rollback(self, message: str, target: Any, reason: str) -> None:
        """Tell the host that the new model failed its probation and the daemon rolled back to
        ``target`` (ROLLBACK_RESULT ``ROLLED_BACK``), when the sink speaks the wire protocol."""
        if self._protocol is None:
            return
        from xenoedge.edge.flashing.service import slot_dict
        from xenoedge.edge.protocol.flash import FlashCode, result_payload
        from xenoedge.edge.protocol.packets import PacketType

        payload = result_payload(
            FlashCode.ROLLED_BACK, {"message": message, "active": slot_dict(target), "reason": reason}
        )
        self._protocol.send_packet(PacketType.ROLLBACK_RESULT, payload)

    def close(self) -> None:
        """Stop the reading thread, close the flashing service (its job finishes), then let the
        reply thread write the last answers and stop (idempotent)."""
        self._control_stop.set()
        if self._control_thread is not None:
            self._control_thread.join(timeout=5.0)
            self._control_thread = None
        if self.flash is not None:
            self.flash.close()
            self.flash = None
        self._reply_stop.set()  # after the flashing job: its last answer still goes out
        if self._reply_thread is not None:
            self._reply_thread.join(timeout=5.0)
            self._reply_thread = None
