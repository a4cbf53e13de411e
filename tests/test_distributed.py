"""DistributedDataParallel training on the CPU: 2 processes, gloo backend, tiny model and data."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from napari_organelle import distributed as nd
from napari_organelle.training import TrainConfig, _dist_info, train

TINY = {"stem": 8, "widths": [8, 16], "blocks": [1, 1]}
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(n, seed, s=32):
    g = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = g.random((n, 2, s, s), dtype=np.float32) * 0.2
    X[y == 1, 0, 8:24, 8:24] += 0.7  # class 1: a bright square in the protein channel
    return np.clip(X, 0, 1), y.astype(np.int64)


def _env(rank, port):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(WORLD), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(WORLD)})


def _engine_worker(rank, port, out_dir):
    torch.set_num_threads(1)
    _env(rank, port)
    info = nd.init_distributed("cpu")
    assert info.backend == "gloo" and info.world_size == WORLD and info.rank == rank
    events = []
    cfg = TrainConfig(epochs=2, batch_size=4, lr=3e-3, device="cpu", seed=0, num_threads=1)
    assert _dist_info(cfg) == (rank, WORLD)
    res = train("classifier", _data(24, 0), _data(10, 1), cfg, classes=["a", "b"], arch_kwargs=TINY,
                callback=events.append)
    # the initial weights: what the same seed builds before any training
    with torch.random.fork_rng():
        torch.manual_seed(0)
        from napari_organelle.models.registry import build_model
        init = build_model("classifier", "organelle-cnn", num_classes=2, **TINY).state_dict()
    torch.save({"final": res.model.state_dict(), "init": init, "n_events": len(events),
                "history": [(h.train_loss, h.val_loss, h.val_acc) for h in res.history],
                "best_epoch": res.best_epoch},
               os.path.join(out_dir, f"rank{rank}.pt"))
    nd.shutdown()


def _cli_worker(rank, port, out_dir):
    torch.set_num_threads(1)
    _env(rank, port)
    code = nd.main(["train", "simulated:2", "--epochs", "1", "--size", "32", "--batch-size", "4",
                    "--device", "cpu", "--threads", "1", "--quiet",
                    "--out", os.path.join(out_dir, "model.pt")])
    assert code == 0


def test_ddp_two_processes_identical_weights(tmp_path):
    mp.spawn(_engine_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["final"].keys() == r1["final"].keys()
    for k in r0["final"]:
        assert torch.equal(r0["final"][k], r1["final"][k]), k  # both ranks end with identical weights
    assert torch.equal(r0["init"]["head.weight"], r1["init"]["head.weight"])
    changed = [k for k in r0["final"] if r0["final"][k].is_floating_point()
               and not torch.equal(r0["final"][k], r0["init"][k])]
    assert len(changed) > len(r0["final"]) // 2  # and they differ from the initial weights
    assert r0["history"] == r1["history"] and len(r0["history"]) == 2  # all-reduced metrics agree
    assert r0["best_epoch"] >= 1
    assert r0["n_events"] > 0 and r1["n_events"] == 0  # only rank 0 emits events


def test_cli_under_two_processes_writes_one_checkpoint(tmp_path):
    mp.spawn(_cli_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    from napari_organelle.checkpoints import load_checkpoint

    m = load_checkpoint(tmp_path / "model.pt")
    assert m.kind == "classifier" and m.input_size == 32
    assert m.training_info["world_size"] == WORLD


def test_not_distributed_by_default():
    assert not dist.is_initialized()
    assert _dist_info(TrainConfig()) == (0, 1)
    with pytest.raises(Exception, match="torchrun"):
        _dist_info(TrainConfig(distributed=True))
