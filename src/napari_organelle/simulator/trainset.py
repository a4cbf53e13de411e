"""Labelled classifier inputs from a mix of renderers, built in parallel and reproducibly.

Each sample has its own generator, ``SeedSequence(seed, spawn_key=(crc32(renderer), crc32(class),
i))``, so a sample does not depend on how the work is split between processes, on which other
renderers or classes are asked for, or on how many samples.
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..classes import CLASSES


def sample_rng(seed: int, renderer: str, cls: str, i: int) -> np.random.Generator:
    key = (zlib.crc32(renderer.encode()), zlib.crc32(str(cls).encode()), int(i))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def _work(job):
    seed, renderer, cls, idx, input_size, diameter_range = job
    import torch

    torch.set_num_threads(1)
    from . import get_renderer
    from .scene import training_sample

    render = get_renderer(renderer)
    xs, infos = [], []
    for i in idx:
        rng = sample_rng(seed, renderer, cls, i)
        for _ in range(5):  # a draw that cannot be used (e.g. nothing left after a border cut): next
            try:
                x, info = training_sample(cls, rng, render, input_size=input_size,
                                          diameter_range=diameter_range)
                break
            except Exception as exc:  # noqa: BLE001 - recorded, the sample is redrawn
                info = {"error": repr(exc)}
        else:
            raise RuntimeError(f"{renderer} {cls} #{i}: {info}")
        info.update(renderer=renderer, cls=cls, i=int(i))
        xs.append(x)
        infos.append(info)
    return np.stack(xs), infos


def build(per_class: int, renderers, *, seed: int = 0, input_size: int = 256, classes=CLASSES,
          workers: int | None = None, chunk: int = 25, diameter_range=(80.0, 400.0), progress=None):
    """``per_class`` samples of each class from each renderer -> (X uint8 (N, 2, S, S), y int64 (N,),
    infos). ``workers`` processes (default: the CPUs available); ``progress(done, total)``."""
    classes = list(classes)
    renderers = list(renderers)
    jobs = []
    for r in renderers:
        for cls in classes:
            for start in range(0, per_class, chunk):
                jobs.append((seed, r, cls, list(range(start, min(per_class, start + chunk))),
                             int(input_size), tuple(diameter_range)))
    total = len(renderers) * len(classes) * per_class
    X = np.empty((total, 2, input_size, input_size), np.uint8)
    y = np.empty(total, np.int64)
    infos = []
    n = 0
    workers = workers or len(os.sched_getaffinity(0))
    if workers <= 1:
        results = map(_work, jobs)
        pool = None
    else:
        import multiprocessing as mp

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        results = pool.map(_work, jobs)
    try:
        for job, (xs, inf) in zip(jobs, results):
            k = len(xs)
            X[n:n + k] = xs
            y[n:n + k] = classes.index(job[2])
            infos.extend(inf)
            n += k
            if progress is not None:
                progress(n, total)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return X, y, infos
