"""Training across processes: PyTorch's DistributedDataParallel on the gloo backend.

Two ways in (docs/training.md "Training across processes"):

- ``xenoedge train --nproc N`` / ``launch(config, out, nproc=N)``: N processes on this machine,
  spawned with the standard library's ``multiprocessing``. They meet through a file in a fresh temporary
  folder (``file://`` init method), so there is no TCP port to choose and parallel runs never
  collide.
- ``torchrun --nproc-per-node N --no-python xenoedge train ...`` or
  ``torchrun --nproc-per-node N -m xenoedge.xeno.distributed CONFIG.json --out FOLDER``: torchrun's
  elastic launcher sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``;
  each process joins through ``env://``. The same line works across nodes (``--nnodes``,
  ``--rdzv-endpoint``).

What a rank does (``Rank``, used by ``xenoedge.xeno.train.train``): the global batch stays
``config.batch_size``; rank r of N computes items ``[r*B/N, (r+1)*B/N)`` of each step's batch
(crops are a function of (seed, step, k), so the N shards together are exactly the batch a
single process draws), augments them with its own generator reseeded every step from
(seed, rank, step), and DDP averages the gradients, so every rank takes the same Adam step at the
same learning rate. Rank 0 alone writes checkpoints, recalibrates BatchNorm on whole batches
at the end and scores validation; the loss history holds the mean over ranks. With N = 1
nothing of this runs: ``train`` is exactly the single-process training.
"""

from __future__ import annotations

import argparse
import json
import os
import queue as queue_module
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xenoedge.xeno.seeds import stable_seed

from xenoedge.errors import XenoedgeError

#: Backend for CPU processes (NCCL needs GPU tensors, which ``xenoedge.xeno.train`` does not use yet).
BACKEND = "gloo"
#: Environment variables torchrun (and ``torch.distributed.run``) set for every process.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

ProgressCallback = Callable[[int, int, float], None]


@dataclass(frozen=True)
class Rank:
    """This process's place in the group; ``Rank()`` is the single-process run (no group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    threads: int | None = None  # torch threads for this process; None: the config's

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def run_config(self) -> dict | None:
        """What the checkpoint's config.json records (only for N > 1, so single runs read as before)."""
        return {"world_size": self.world_size, "backend": BACKEND} if self.distributed else None

    def shard(self, batch_size: int) -> range:
        """Items of the global batch this rank computes: a contiguous 1/N of them."""
        if not self.distributed:
            return range(batch_size)
        if batch_size % self.world_size:
            raise XenoedgeError(f"batch size {batch_size} does not divide over {self.world_size} processes")
        per_rank = batch_size // self.world_size
        return range(self.rank * per_rank, (self.rank + 1) * per_rank)

    def seed_step(self, generator, seed: int, step: int) -> None:
        """N > 1: the augmentation generator restarts every step from (seed, rank, step), so each
        rank augments differently and a resumed run needs no per-rank random state."""
        if self.distributed:
            generator.manual_seed(stable_seed("ddp-augment", seed, self.rank, step))

    def wrap(self, model, input_pool: int):
        """The module the training step calls: ``model`` (or its working-size forward) itself for
        N = 1, a DistributedDataParallel around it for N > 1 (gradients averaged in backward)."""
        if not self.distributed:
            return model.forward_working if input_pool > 1 else model
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # Buffers (BatchNorm running statistics) are not synchronised every step: rank 0
        # recomputes them for the final weights (and for each validation copy) anyway.
        # (torch 2.13 renamed broadcast_buffers to forward_sync_buffers; the range admits both.)
        renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        options = {"forward_sync_buffers" if renamed else "broadcast_buffers": False}
        return DistributedDataParallel(_working(model) if input_pool > 1 else model, **options)

    def mean(self, value) -> float:
        """A scalar tensor averaged over the ranks (the loss history is the global batch's)."""
        if not self.distributed:
            return float(value)
        import torch.distributed as dist

        total = value.detach().clone().reshape(1)
        dist.all_reduce(total)
        return float(total[0]) / self.world_size

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (e.g. the validation stopping rule's decision)."""
        if not self.distributed:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([1 if flag else 0], dtype=torch.int64)
        dist.broadcast(value, src=0)
        return bool(value[0])


SINGLE = Rank()


def _working_module():
    import torch

    class Working(torch.nn.Module):
        """``model.forward_working`` as a module's forward, so DDP can wrap it."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.forward_working(x)

    return Working


def _working(model):
    """``model`` as a module whose forward is its working-size forward (torch imported lazily)."""
    return _working_module()(model)


def torchrun_rank(threads: int | None = None) -> Rank | None:
    """This process's Rank when started by torchrun (``RANK``/``WORLD_SIZE`` set), else None."""
    if not all(name in os.environ for name in TORCHRUN_VARIABLES):
        return None
    try:
        rank, world, local = (int(os.environ[name]) for name in TORCHRUN_VARIABLES)
    except ValueError:
        raise XenoedgeError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers: "
            + ", ".join(f"{n}={os.environ[n]!r}" for n in TORCHRUN_VARIABLES)
        ) from None
    if not 0 <= rank < world:
        raise XenoedgeError(f"RANK {rank} outside WORLD_SIZE {world}")
    return Rank(rank, world, local, threads=threads)


def per_process_threads(config_threads: int, processes_here: int) -> int:
    """Share this machine's ``config.threads`` among the processes on it (at least 1 each)."""
    return max(1, int(config_threads) // max(1, int(processes_here)))


def _join_group(rank: Rank, init_method: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(BACKEND, init_method=init_method, rank=rank.rank, world_size=rank.world_size)


def _leave_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def run_rank(config, out: Path, rank: Rank, *, init_method: str = "env://", resume: bool = True, progress=None):
    """Join the group, train this rank's part, wait for the others (rank 0 writes last), leave."""
    import torch.distributed as dist
    from xenoedge.xeno.train import train

    if not rank.distributed:
        return train(config, out, resume=resume, progress=progress)
    _join_group(rank, init_method)
    try:
        result = train(config, out, resume=resume, progress=progress if rank.is_main else None, dist=rank)
        dist.barrier()  # every rank ends after rank 0's last checkpoint is on disk
        return result
    finally:
        _leave_group()


def _worker(local_rank: int, nproc: int, init_file: str, config_json: dict, out: str, resume: bool, threads, events):
    """One process of ``launch``; its errors travel back as text (a XenoedgeError's message, or
    any other exception's traceback)."""
    import traceback

    from xenoedge.xeno.train import TrainConfig

    rank = Rank(local_rank, nproc, local_rank, threads=threads)

    def report(step: int, total: int, loss: float) -> None:
        events.put(("progress", step, total, loss))

    try:
        run_rank(
            TrainConfig.from_json(config_json),
            Path(out),
            rank,
            init_method=f"file://{init_file}",
            resume=resume,
            progress=report if rank.is_main else None,
        )
    except XenoedgeError as exc:
        events.put(("error", local_rank, str(exc)))
        raise SystemExit(1) from None
    except BaseException:
        events.put(("crash", local_rank, traceback.format_exc()))
        raise SystemExit(1) from None


def launch(
    config,
    out: Path,
    *,
    nproc: int = 1,
    resume: bool = True,
    progress: ProgressCallback | None = None,
    threads: int | None = None,
) -> Path:
    """Train ``config`` into ``out`` with ``nproc`` processes on this machine; returns ``out``.

    ``nproc=1`` is ``xenoedge.xeno.train.train`` itself. Otherwise processes are spawned (the standard
    library's ``multiprocessing``, so this process does not import torch), meet through a file
    rendezvous in a temporary folder, and run ``train`` with their ``Rank``; ``progress`` gets
    rank 0's steps (with the loss averaged over ranks). ``threads`` per process defaults to
    ``config.threads // nproc`` (at least 1). When a rank fails the others are stopped: a
    ``XenoedgeError`` in a rank comes back as one, anything else as a RuntimeError with the rank's
    traceback.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    nproc = int(nproc)
    if nproc < 1:
        raise XenoedgeError(f"--nproc must be at least 1, got {nproc}")
    if nproc == 1:
        from xenoedge.xeno.train import train

        return train(config, Path(out), resume=resume, progress=progress)
    Rank(0, nproc).shard(config.batch_size)  # a clear error before any process starts
    out = Path(out)
    threads = per_process_threads(config.threads, nproc) if threads is None else int(threads)
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    errors: list[str] = []
    crashes: list[str] = []

    def drain() -> None:
        while True:
            try:
                event = events.get_nowait()
            except queue_module.Empty:
                return
            if event[0] == "progress" and progress is not None:
                progress(*event[1:])
            elif event[0] == "error":
                errors.append(f"rank {event[1]}: {event[2]}")
            elif event[0] == "crash":
                crashes.append(f"rank {event[1]}:\n{event[2]}")

    with tempfile.TemporaryDirectory(prefix="xenoedge-rendezvous-") as folder:
        init_file = str(Path(folder) / "rendezvous")
        processes = [
            context.Process(
                target=_worker,
                args=(rank, nproc, init_file, config.to_json(), str(out), resume, threads, events),
                name=f"xenoedge-train-rank{rank}",
            )
            for rank in range(nproc)
        ]
        try:
            for process in processes:
                process.start()
            while any(p.exitcode is None for p in processes) and all(p.exitcode in (None, 0) for p in processes):
                wait([p.sentinel for p in processes if p.exitcode is None], timeout=0.2)
                drain()
        finally:  # a failed rank (or Ctrl-C here) stops the others, which would wait for it
            for process in processes:
                if process.exitcode is None and process.pid is not None:
                    process.terminate()
            for process in processes:
                if process.pid is not None:
                    process.join()
            drain()
    failed = {rank: p.exitcode for rank, p in enumerate(processes) if p.exitcode != 0}
    if errors:
        raise XenoedgeError("; ".join(errors))
    if failed:
        detail = "\n".join(crashes) or ", ".join(f"rank {r} exit code {c}" for r, c in failed.items())
        raise RuntimeError(f"training process failed: {detail}")
    return out


def is_main_process() -> bool:
    """False only in a torchrun rank other than 0 (which neither prints progress nor writes)."""
    return os.environ.get("RANK", "0") == "0"


def train_processes(
    config, out: Path, *, nproc: int = 1, resume: bool = True, progress: ProgressCallback | None = None
) -> Path:
    """What ``xenoedge train`` runs: this process's rank under torchrun, ``nproc`` processes
    through ``launch`` otherwise (1: the single-process training)."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    rank = torchrun_rank(per_process_threads(config.threads, local_world))
    if rank is None:
        return launch(config, out, nproc=nproc, resume=resume, progress=progress)
    if nproc != 1:
        raise XenoedgeError(f"started by torchrun (WORLD_SIZE={rank.world_size}): leave --nproc out")
    return run_rank(config, Path(out), rank, resume=resume, progress=progress if rank.is_main else None)


def main(argv: Sequence[str] | None = None) -> int:
    """``torchrun --nproc-per-node N -m xenoedge.xeno.distributed CONFIG.json --out FOLDER``.

    CONFIG.json is a ``TrainConfig`` as JSON (the ``train`` entry of a checkpoint's config.json
    is one). Without torchrun's variables it trains in this one process.
    """
    parser = argparse.ArgumentParser(
        prog="python -m xenoedge.xeno.distributed", description=main.__doc__.splitlines()[0]
    )
    parser.add_argument("config", type=Path, help="TrainConfig as JSON")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (rank 0 writes it)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    args = parser.parse_args(argv)
    from xenoedge.xeno.train import TrainConfig

    try:
        config = TrainConfig.from_json(json.loads(args.config.read_text()))
        train_processes(config, args.out, resume=not args.no_resume)
    except (XenoedgeError, OSError, json.JSONDecodeError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if is_main_process():
        print(f"checkpoint in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
