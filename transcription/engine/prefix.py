"""The start every stream shares, computed once: a joining stream costs one step, not 32.

A stream's first `n_left_pad_steps - 1` steps see only the left pad's silence (the next step's window
already reaches 2.5 ms into the real audio) and the prompt's tokens (BOS, then streaming pads), so their
caches are the same for every stream with the same delay; the delay enters through the decoder's time
conditioning, the encoder does not see it. At start-up these steps run once, for every delay, in a
small scratch pool whose rings are just long enough to hold them (the attention mask still uses the
model's windows, so the arithmetic is the live step's). A new stream's slot then receives a copy of
the entries its own rings would hold after those steps, and the stream starts at the next position.
Without the copy, every join or reconnect spent 31 steps of the whole batch's time at once.
"""
from dataclasses import replace

import torch

from .audio import STEP_WINDOW
from .cache import EMPTY, CachePool, PoolShape, audio_ring
from .step import MAX_DELAY_STEPS, ModelStep, StepBuffers


class PromptPrefix:
    """Built before the stream pool is sized (its scratch memory is given back); `apply` fills a slot."""

    def __init__(self, model, shape: PoolShape, logmel, spec, device, dtype, kv_dtype=None, audio_kv_dtype=None,
                 ring_kernel=False):
        self.steps = max(0, spec.n_left_pad_steps - 1)  # positions 0..steps-1 are known in advance
        self.frames = self.steps * model.config.downsample_factor  # encoder frames of those steps
        self.tensors: dict[str, list[torch.Tensor]] = {}  # ring tensor name -> per layer (rows, H, positions, ...)
        if self.steps > 0:
            # One row per delay (row d-1 for delay d); rings as long as the prefix, so nothing wraps.
            scratch_shape = replace(shape, slots=MAX_DELAY_STEPS, text_window=self.steps, audio_ring=audio_ring(self.frames))
            scratch = CachePool(scratch_shape, device, dtype, kv_dtype=kv_dtype, audio_kv_dtype=audio_kv_dtype)
            self._compute(model, scratch, logmel, spec, ring_kernel)
            self._keep(scratch)

    @torch.no_grad()
    def _compute(self, model, scratch: CachePool, logmel, spec, ring_kernel: bool):
        rows = MAX_DELAY_STEPS
        bufs = StepBuffers.allocate(rows, scratch.shape.mels, scratch.device, scratch.dtype)
        step = ModelStep(model, scratch, bufs, ring_kernel)
        silence = logmel(torch.zeros(1, STEP_WINDOW))  # (1, MELS, 8): the left pad's features
        bufs.mel.copy_(silence.expand(rows, -1, -1).to(bufs.mel.dtype))
        bufs.delay.copy_(torch.arange(1, rows + 1))
        bufs.active.fill_(True)
        prompts = [spec.prompt(d) for d in range(1, rows + 1)]
        for t in range(self.steps):
            bufs.token.copy_(torch.tensor([p[t] for p in prompts]))
            bufs.pos.fill_(t)
            step.fill_caches(rows)  # the outputs of these steps are never used

    def _keep(self, scratch: CachePool):
        """Keep what `apply` copies: every delay's decoder rows, one row of the encoder (it ignores the delay)."""
        for ring in ("text", "audio"):
            for name in scratch.ring_tensor_names(ring):
                self.tensors[name] = [t.clone() if ring == "text" else t[:1].clone() for t in getattr(scratch, name)]
        self.conv1, self.conv2 = scratch.conv1[:1].clone(), scratch.conv2[:1].clone()

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for ts in self.tensors.values() for t in ts)

    def apply(self, pool: CachePool, slot: int, delay_steps: int) -> int:
        """Copy the prefix for `delay_steps` into `slot` (freshly reset); returns the position to start at."""
        if self.steps <= 0:
            return 0
        for ring, count, size, pos in (("text", self.steps, pool.shape.text_window, pool.text_pos),
                                       ("audio", self.frames, pool.shape.audio_ring, pool.audio_pos)):
            src_idx, dst_idx = _ring_entries(count, size, pool.device)
            row = delay_steps - 1 if ring == "text" else 0
            for name in pool.ring_tensor_names(ring):
                for s_t, d_t in zip(self.tensors[name], getattr(pool, name)):
                    d_t[slot, :, dst_idx] = s_t[row, :, src_idx]
            pos[slot].fill_(EMPTY)
            pos[slot, dst_idx] = src_idx
        pool.conv1[slot].copy_(self.conv1[0])
        pool.conv2[slot].copy_(self.conv2[0])
        return self.steps


def _ring_entries(count: int, ring: int, device):
    """Positions 0..count-1 written in order into a ring of `ring` entries keep the last `ring` of them:
    (their positions, which are also their scratch indices; their indices in the ring)."""
    positions = torch.arange(max(0, count - ring), count, device=device)
    return positions, positions % ring
