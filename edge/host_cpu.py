"""What this CPU is, as far as the runtimes care: model and the ISA extensions that decide which
kernels ONNX Runtime and OpenVINO pick (AVX2, AVX-512, VNNI, BF16, AMX, ...; on ARM the
``Features``). Used by ``edge-bench``'s reports (``xenoedge.bench.settings``) and by the daemon's
on-device target timing (``xenoedge.edge.target_timing``), whose cache is kept per CPU.
"""

from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["ARM_ISA_FLAGS", "ISA_FLAGS", "cpu_info"]

#: ``/proc/cpuinfo`` flags that change what the runtimes run (kernel choice, INT8/BF16/FP16 support).
ISA_FLAGS = (
    "sse4_2",
    "fma",
    "f16c",
    "avx",
    "avx2",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
#: The same for ARM (``Features`` of ``/proc/cpuinfo``: Jetson, Raspberry Pi).
ARM_ISA_FLAGS = ("neon", "asimd", "asimdhp", "asimddp", "fphp", "sve", "bf16", "i8mm")


def cpu_info(cpuinfo: str | None = None) -> dict:
    """{model, vendor, isa: {flag: present}, flags_present: [...]} of this CPU.

    ``cpuinfo``: the text of ``/proc/cpuinfo`` (read here when None; elsewhere than Linux only
    ``platform.processor()`` is known and ``isa`` is empty).

    >>> info = cpu_info("vendor_id : GenuineIntel\\nmodel name : Xeon\\nflags : fpu sse4_2 avx2 fma amx_bf16\\n")
    >>> info["model"], info["flags_present"], info["isa"]["avx512f"]
    ('Xeon', ['sse4_2', 'fma', 'avx2', 'amx_bf16'], False)
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key not in fields:  # the first processor's entry
            fields[key] = value.strip()
    model = fields.get("model name") or fields.get("hardware") or fields.get("cpu model") or platform.processor()
    known = ISA_FLAGS if "flags" in fields else ARM_ISA_FLAGS
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    present = [f for f in known if f in flags]
    return {
        "model": model or None,
        "vendor": fields.get("vendor_id") or fields.get("cpu implementer"),
        "isa": {f: f in flags for f in known} if flags else {},
        "flags_present": present,
    }
