"""Fuzz the host decoder: at least 10^6 mutated inputs, only ProtocolError may escape.

    python benchmarks/fuzz_decoder.py [--inputs 1000000] [--seed 0] [--workers 4] [--json out.json]

Each input is 1-3 valid frames (HELLO, STATUS, LOG, ERROR and MASK frames of 40 bytes to
~9 KB from a fixed pool), damaged by 1-4 random mutations: bit flips, byte overwrites,
inserted random bytes (with and without 0x00), deleted ranges, truncation, duplicated
slices, spliced-in pieces of other frames and garbage prefixes. Every fourth input is
instead a packet with a valid CRC around a mutated payload, so the payload decoders (RLE,
zlib, JSON, ...) see damaged data too. It goes through a fresh
``StreamDecoder`` in random chunks, then ``finish()``; every packet that comes out has
its payload parsed with ``Packet.message()``. Anything raised other than ``ProtocolError``
is a failure (printed with the input's hex and counted; the exit status is then 1).
Independent of atheris: a plain seeded loop, reproducible input by input.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere
from xenoedge.edge.protocol import (
    PacketType,
    ProtocolError,
    StreamDecoder,
    encode_packet,
    error_payload,
    hello_payload,
    log_payload,
    mask_payload,
    status_payload,
)

MODEL_ID = bytes(range(16))


def frame_pool(seed: int = 0) -> list[bytes]:
    """Valid frames of every type and a range of sizes (deterministic)."""
    return [encode_packet(t, p, sequence=i, timestamp_us=i) for i, (t, p) in enumerate(payload_pool(seed))]


def payload_pool(seed: int = 0) -> list[tuple[PacketType, bytes]]:
    """Valid (type, payload) pairs of every type and a range of sizes (deterministic)."""
    rng = np.random.default_rng(seed)
    frames = []
    hello = {"device_id": "d", "camera_id": "c", "sensor_signature": "tivita", "bundle_name": "b",
             "bundle_version": "1.0.0", "model_id": MODEL_ID.hex()}  # fmt: skip
    frames.append((PacketType.HELLO, hello_payload(hello)))
    for i in range(8):
        status = status_payload(uptime_s=i, fps=30.0, frames=i * 30, dropped_frames=i, model_id=MODEL_ID)
        frames.append((PacketType.STATUS, status))
        text = "x" * int(rng.integers(0, 400))
        frames.append((PacketType.LOG, log_payload(20, text)))
        frames.append((PacketType.ERROR, error_payload(i, text[:50])))
    for i, (h, w, n) in enumerate([(8, 8, 3), (32, 40, 5), (60, 80, 12), (120, 160, 4), (240, 320, 12), (16, 16, 255)]):
        blobs = rng.integers(0, n, (-(-h // 8), -(-w // 8)), dtype=np.uint8)
        classes = np.kron(blobs, np.ones((8, 8), np.uint8))[:h, :w].copy()
        specks = rng.random((h, w)) < 0.01
        classes[specks] = rng.integers(0, n, int(specks.sum()), dtype=np.uint8)
        payload = mask_payload(classes, frame_index=i, model_id=MODEL_ID, n_classes=n, with_counts=bool(i % 2))
        frames.append((PacketType.MASK, payload))
    return frames


def mutate(data: bytearray, rnd: random.Random, pool: list[bytes]) -> bytearray:
    """Apply one random mutation in place and return ``data``."""
    n = len(data)
    kind = rnd.randrange(9)
    at = rnd.randrange(n) if n else 0
    if kind == 0 and n:
        data[at] ^= 1 << rnd.randrange(8)
    elif kind == 1 and n:
        data[at] = rnd.randrange(256)
    elif kind == 2:
        data[at:at] = rnd.randbytes(rnd.randrange(1, 16))
    elif kind == 3:
        data[at:at] = b"\x00"
    elif kind == 4:
        del data[at : at + rnd.randrange(1, 32)]
    elif kind == 5:
        del data[at:]
    elif kind == 6 and n:
        b = rnd.randrange(n)
        data[at:at] = data[min(at, b) : max(at, b)][:64]
    elif kind == 7:
        other = rnd.choice(pool)
        a = rnd.randrange(len(other))
        data[at:at] = other[a : a + rnd.randrange(1, 200)]
    else:
        data[0:0] = rnd.randbytes(rnd.randrange(1, 40))
    return data


def run(inputs: int, seed: int) -> dict:
    """Fuzz ``inputs`` mutated inputs with the given seed; return counts."""
    pool, payloads = frame_pool(), payload_pool()
    rnd = random.Random(seed)
    failures, packets, payload_errors, total_bytes = [], 0, 0, 0
    for i in range(inputs):
        if i % 4 == 3:  # a damaged payload in a packet with a valid CRC: exercises the payload decoders
            ptype, payload = rnd.choice(payloads)
            payload = bytes(mutate(bytearray(payload), rnd, pool))
            data = bytearray(encode_packet(ptype, payload, sequence=i & 0xFFFFFFFF, timestamp_us=i))
        else:
            data = bytearray(b"".join(rnd.choice(pool) for _ in range(rnd.randrange(1, 4))))
            for _ in range(rnd.randrange(1, 5)):
                mutate(data, rnd, pool)
        raw = bytes(data)
        total_bytes += len(raw)
        dec = StreamDecoder()
        try:
            got = []
            pos = 0
            while pos < len(raw):
                step = rnd.choice((1, 7, 64, 1 << 20))
                got += dec.feed(raw[pos : pos + step])
                pos += step
            got += dec.finish()
            for packet in got:
                packets += 1
                try:
                    packet.message()
                except ProtocolError:
                    payload_errors += 1
        except ProtocolError as exc:  # allowed to escape, but feed() should not need it: count it
            failures.append(f"ProtocolError from feed(): {exc}: {raw.hex()}")
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}: {raw.hex()}")
    return {"inputs": inputs, "bytes": total_bytes, "packets": packets, "payload_errors": payload_errors,
            "failures": failures}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    shares = [args.inputs // args.workers + (i < args.inputs % args.workers) for i in range(args.workers)]
    t0 = time.perf_counter_ns()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run, shares, [args.seed * 1000 + i for i in range(args.workers)]))
    seconds = (time.perf_counter_ns() - t0) / 1e9
    total = {k: sum(r[k] for r in results) for k in ("inputs", "bytes", "packets", "payload_errors")}
    failures = [f for r in results for f in r["failures"]]
    total.update(failures=len(failures), seconds=round(seconds, 1), workers=args.workers,
                 inputs_per_s=round(total["inputs"] / seconds))  # fmt: skip
    for failure in failures[:10]:
        print(failure[:2000])
    print(
        f"{total['inputs']} mutated inputs ({total['bytes'] / 1e6:.0f} MB) in {seconds:.1f} s on {args.workers} "
        f"processes ({total['inputs_per_s']} inputs/s): {total['packets']} packets recovered, "
        f"{total['payload_errors']} payload errors (ProtocolError), {len(failures)} failures"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(total, f, indent=1)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
