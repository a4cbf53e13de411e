"""Multi-process (multi-GPU) training with DistributedDataParallel, for users who outgrow one GPU.

Start one process per GPU with ``torchrun``::

    torchrun --nproc_per_node=2 -m napari_organelle.distributed train DATA --out model.pt [--epochs 40 ...]

Every process loads the data and builds the same model; the training engine
(:func:`napari_organelle.training.train`) sees the initialised process group and then

* shards each epoch's permutation by rank (the same permutation on every rank, rank ``r`` takes
  positions ``r, r + world, ...``; ``--batch-size`` is per process, so the global batch is
  ``batch_size * world``),
* wraps the model in ``DistributedDataParallel`` (``find_unused_parameters=False``; gradients are
  averaged across ranks at every step, so the weights stay identical),
* all-reduces the loss / accuracy sums for its events and averages BatchNorm statistics across ranks
  at the end of every epoch,
* lets only rank 0 emit events, print and write checkpoints.

On machines without CUDA the gloo backend runs the same code on the CPU (this is how the tests run
it). A plain ``python -m napari_organelle.distributed train ...`` (no torchrun) trains in one process.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import torch


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: not distributed (one process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def init_distributed(device: str = "auto", backend: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT). ``device`` 'auto': this process's GPU (cuda:LOCAL_RANK) with NCCL when
    CUDA is available, otherwise the CPU with gloo. Without that environment: one process."""
    import torch.distributed as dist

    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    want_cuda = device in ("auto", "cuda", "gpu") and torch.cuda.is_available()
    if device.startswith("cuda:"):
        want_cuda = True
    if want_cuda:
        n = torch.cuda.device_count()
        dev = torch.device("cuda", local % max(1, n))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world <= 1:
        return DistInfo(0, 1, 0, dev, None)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if not dist.is_initialized():
        kw = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kw)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev, backend)


def shutdown(barrier: bool = True) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m napari_organelle.distributed",
                                description="Data-parallel training under torchrun (see module doc).")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("train", help="train or fine-tune a model (like 'napari-organelle train')")
    s.add_argument("data", help="folder / .zip / .tgz (any supported layout) or simulated:N")
    s.add_argument("--model", choices=["classifier", "autoencoder"], default="classifier")
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--batch-size", type=int, default=32, help="per process")
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--weight-decay", type=float, default=1e-4)
    s.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK, else cpu) | cpu")
    s.add_argument("--backend", default=None, help="nccl | gloo (default: nccl on GPUs, gloo on the CPU)")
    s.add_argument("--from", dest="init", default=None, help="checkpoint (path or model name) to fine-tune")
    s.add_argument("--freeze-backbone", action="store_true")
    s.add_argument("--size", type=int, default=None, help="classifier input size (default 128)")
    s.add_argument("--arch", default=None)
    s.add_argument("--val-fraction", type=float, default=0.15)
    s.add_argument("--test-fraction", type=float, default=0.15)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--patience", type=int, default=None)
    s.add_argument("--no-augment", action="store_true")
    s.add_argument("--crop-size", type=int, default=96)
    s.add_argument("--no-amp", action="store_true")
    s.add_argument("--channels-last", action="store_true")
    s.add_argument("--compile", action="store_true", help="torch.compile the model")
    s.add_argument("--threads", type=int, default=None,
                   help="CPU threads per process (default: cores / processes on this node)")
    s.add_argument("--out", required=True, help="checkpoint to write (rank 0 only)")
    s.add_argument("--resume-file", default=None, help="best-so-far checkpoint written during training")
    s.add_argument("--quiet", action="store_true")
    return p


def train_main(args) -> int:
    from . import recipes
    from .checkpoints import write_checkpoint_dict
    from .training import EpochEvent, TrainConfig, format_epoch

    info = init_distributed(args.device, args.backend)
    ok = False
    try:
        threads = args.threads
        if threads is None and info.device.type == "cpu":
            per_node = _env_int("LOCAL_WORLD_SIZE", info.world_size)
            threads = max(1, (os.cpu_count() or 1) // max(1, per_node))
        config = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            device=str(info.device), amp=not args.no_amp, channels_last=args.channels_last, seed=args.seed,
            patience=args.patience, augment=not args.no_augment, freeze_backbone=args.freeze_backbone,
            crop_size=args.crop_size, num_threads=threads, compile=args.compile,
            distributed=info.world_size > 1)
        init = None
        if args.init:
            from .checkpoints import resolve_model

            init = resolve_model(args.init, args.model)

        def say(msg: str) -> None:
            if info.is_main and not args.quiet:
                print(msg, flush=True)

        def callback(ev) -> None:  # the engine calls it on rank 0 only
            if isinstance(ev, EpochEvent):
                say(format_epoch(ev))

        say(f"data-parallel training: {info.world_size} process(es), backend {info.backend or 'none'}, "
            f"device {info.device}" + (f", {threads} CPU thread(s) each" if threads else ""))
        val, test = float(args.val_fraction), float(args.test_fraction)
        outcome = recipes.train_model(
            args.data, args.model, config, init=init, size=args.size, fractions=(1 - val - test, val, test),
            split_seed=args.seed, callback=callback, checkpoint_path=args.resume_file,
            command=recipes.command_line(), arch=args.arch)
        if info.is_main:
            ckpt = outcome.checkpoint
            ckpt.setdefault("training", {})["world_size"] = info.world_size
            write_checkpoint_dict(args.out, ckpt)
            rep = outcome.test_report
            say(f"wrote {args.out}" + (f"; test accuracy {100 * rep.accuracy:.2f}% on {rep.n} images"
                                       if rep is not None else ""))
        ok = True
        return 0
    finally:
        shutdown(barrier=ok)


def main(argv=None) -> int:
    from .preprocess import OrganelleError

    args = _parser().parse_args(argv)
    try:
        return train_main(args)
    except OrganelleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
