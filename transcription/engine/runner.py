"""Runs the model step for a bucket of rows: eagerly on CPU, as replayed CUDA graphs on a GPU.

Buckets are powers of two up to 32, then every 16 rows up to the pool size: a graph computes its whole
bucket, so 65 streams on power-of-two buckets would pay for 128, and real-time capacity (capacity.py)
moves in bucket steps. Each graph is captured once at start-up; they share one memory pool. Warm-up
runs with every row inactive, which leaves every stream's state untouched.
"""
import torch

from .step import ModelStep


FINE_FROM = 32  # above this, buckets grow by FINE_STEP rows instead of doubling
FINE_STEP = 16


def buckets(slots: int) -> list[int]:
    sizes, b = [], 1
    while b < slots:
        sizes.append(b)
        b = b * 2 if b < FINE_FROM else b + FINE_STEP
    return sizes + [slots]


def bucket_for(rows: int, sizes: list[int]) -> int:
    return next(b for b in sizes if b >= rows)


class StepRunner:
    def __init__(self, step: ModelStep, slots: int, use_graphs: bool):
        self.step = step
        self.sizes = buckets(slots)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        if use_graphs:
            self._capture()

    def _capture(self):
        self.step.bufs.active.zero_()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for b in self.sizes:  # eager warm-up: kernels chosen, lazy modules initialised
                self.step(b)
        torch.cuda.current_stream().wait_stream(stream)
        pool = torch.cuda.graph_pool_handle()
        for b in reversed(self.sizes):  # largest first, so smaller graphs reuse its memory
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self.step(b)
            self.graphs[b] = graph
        torch.cuda.synchronize()

    def warm_up(self):
        self.step.bufs.active.zero_()
        for b in self.sizes[:2]:
            self.run(b)

    def run(self, rows: int) -> torch.Tensor:
        """Step rows 0..rows-1 (plus inactive padding up to the bucket); returns next tokens (rows,)."""
        b = bucket_for(rows, self.sizes)
        if b in self.graphs:
            self.graphs[b].replay()
        else:
            self.step(b)
        return self.step.bufs.next_token[:rows]
