"""Whole recordings as prefill plus decode: the encoder runs over each segment at once, then only the decoder steps.

A live stream must step the audio encoder 4 frames at a time because its audio arrives that way; a
recording is all there. Here the log-mel frames of many segments are made in one call, and the causal
convolutions, encoder layers and projector run over whole segments in a few large batched passes, leaving
one audio embedding per 80 ms step. Then only the decoder steps, for all segments at once, one
static-shape step per position over a cache sized to the segments (no 8,192-step ring), replayed as a
CUDA graph on a GPU; its attention (the live step's ring kernel, attention.py) reads only the filled part
of the cache.

The arithmetic is the live step's (same mel frames, same causal convolutions with zero history, same
sliding-window masks, same prompt, left pad and right pad, same greedy choice), so the tokens are the
streaming path's: exactly on the tiny model in float32 (tests/engine/test_prefill.py), and on a GPU in
bf16 to the bit (benchmarks/reprocess_bench.py counts the agreement: 100 % on the full-size model). Same
bits needs the same operations on each value, not only the same formulas, so on a GPU the encoder here
takes the live step's: mel frames made on the CPU as the live scheduler makes them (frame by frame the
same whatever the batch), the convolutions and every product as step.py computes them (products on at
least step.INVARIANT_ROWS rows, which gives a row the same bits whatever the batch), the one q/k/v product
and rotary kernel, and attention by the ring kernel reading keys by position in the blocks the live step
reads its wrapping ring in (attention.py, `ordered` and `linear`). Where the live engine starts streams
from its prompt prefix (prefix.py), so does this path: the silent start's encoder keys and values and
decoder cache are the prefix's own numbers, and the rest of the prompt runs step by step as in a live
stream, not as one pass of other matrix shapes.
"""
import contextlib
import copy
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import attention, offline_kernels
from . import audio as A
from .events import TokenTime, Transcript
from .step import conv1d, rope

QUERY_CHUNK = 1024  # encoder frames per SDPA call where the fused kernel is not used: bounds the mask
ENCODE_BATCH = 32  # segments per encoder pass (activations ~35 MB per minute of audio each in bf16)
BY_POSITION_STEPS = 4  # steps of queries per row of the by-position encoder attention (16 frames: the kernel's smallest tile)
HOST_MEL_THREADS = min(8, os.cpu_count() or 1)  # for the mel frames made on the CPU while the GPU encodes (embed_audio)
GIB = 1024**3


@dataclass
class Batch:
    """Segments of one decoder run, longest first; `n_pos[i]` decoder positions for segment i."""

    pcms: list  # float32 arrays
    n_pos: list[int]
    embeds: torch.Tensor  # (B, T, D) audio embedding per decoder position, model dtype


def positions(spec, samples: int, delay_steps: int) -> int:
    """Decoder positions a segment runs, as StreamState.finish counts them (generate never feeds the last)."""
    whole_steps = -(-samples // A.STEP_SAMPLES)
    return spec.n_left_pad_steps + whole_steps + spec.right_pad_steps(delay_steps) - 1


def padded_signals(spec, pcms: list, steps: int) -> np.ndarray:
    """(len(pcms), samples) float32: each segment behind its left pad (and the first frame's look-back),
    zeros after it, long enough for `steps` steps' windows (step k reads [1280 k, 1280 k + 1520))."""
    left = A.LOOK_BACK + spec.n_left_pad_steps * A.STEP_SAMPLES
    out = np.zeros((len(pcms), A.STEP_SAMPLES * (steps - 1) + A.STEP_WINDOW), np.float32)
    for row, pcm in zip(out, pcms):
        n = min(len(pcm), len(row) - left)
        row[left:left + n] = pcm[:n]
    return out


@dataclass
class DecoderStats:
    """What the decoder's step loops did, summed over calls: benchmarks turn it into bytes per second."""

    steps: int = 0
    seconds: float = 0.0  # the step loops alone, GPU-synchronised
    bytes_read: int = 0  # weights and the cache entries the attention reads, per step


class Prefill:
    """The model's modules (through the live `ModelStep`) run over whole segments; see the module doc."""

    def __init__(self, step, logmel, device, dtype, prefix=None):
        """`prefix`: the live engine's prefix.PromptPrefix (or None), used where its caches are in `dtype`."""
        self.s, self.device, self.dtype = step, device, dtype
        self.logmel = copy.copy(logmel)  # the same arithmetic, on the model's device
        self.logmel.filters_t = logmel.filters_t.to(device)
        self.logmel.window = logmel.window.to(device)
        self.host_logmel = logmel  # where the live scheduler computes it (the CPU): see mel_on_host
        # The live step's arithmetic for the encoder, where it runs fused on a GPU: mel frames on the CPU as the
        # live scheduler makes them, its q/k/v product, its by-position ring reads; with the live step's
        # products run on at least step.INVARIANT_ROWS rows, a segment's audio embeddings are its live ones.
        self.by_position = bool(step.fused and step.audio_qkv)
        self.mel_on_host = self.by_position
        self.prefix = prefix if prefix is not None and prefix.steps > 0 else None
        # Triton builds here when the live step's ring kernel did (engine._prefix tries it at start-up).
        self.fused_encoder = offline_kernels.available(device) and step.ring_kernel
        self.ring_kernel = step.ring_kernel  # the live step's decoder attention, so the same arithmetic
        # The decoder step's q, k and v as one product over a copy of their weights (~1 GB for the
        # full-size model): at a few hundred rows three narrow products read their weights at a third of
        # the bandwidth one wide product reaches. Rotary embedding in place (offline_kernels.rope_).
        fused_dtype = self.fused_encoder and dtype in (torch.bfloat16, torch.float32)
        attns = [layer.self_attn for layer in step.text.layers]
        if step.fused:  # the live step's own: the projections' weights are views of it, no second copy
            self.qkv_weights = [weight for weight, _ in step.text_qkv]
        else:
            self.qkv_weights = [torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]) for a in attns] \
                if fused_dtype and _room_for(attns, device) else None
        self.fused_decoder = self.qkv_weights is not None
        self.fused_norm = fused_dtype  # offline_kernels.rms_norm: the module's arithmetic but the sum's order
        # The decoder step in fewer passes, each value's arithmetic unchanged (see _step): its kernels take
        # a tenth of the step at batch 256, and each one leaves the GPU idle between it and the next.
        self.fused_step = fused_dtype and step.text_gate_up is not None  # the live step fused, with its MLP's kernel
        self.timings: dict[str, float] = {}  # seconds per phase, summed over calls (benchmarks read them)
        self.decoder = DecoderStats()
        self.pieces: dict[int, str] = {}  # text of single tokens, for segment_transcript

    @property
    def prefix_rings(self) -> set[str]:
        """The prefix's rings ("text", "audio") that serve here: those in the model's dtype. fp8 decoder rings
        do not (the offline decoder's cache is in the model's dtype); the prompt is then stepped instead."""
        if self.prefix is None:
            return set()
        return {ring for ring in ("text", "audio") if all(
            t.dtype == self.dtype for name, ts in self.prefix.tensors.items() if name.startswith(ring) for t in ts)}

    @contextlib.contextmanager
    def timed(self, phase: str):
        started = time.perf_counter()
        yield
        self._sync()  # once per batch and phase: the figures are the GPU's
        self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---- audio: mel, convolutions, encoder, projector --------------------------------------------
    @torch.no_grad()
    def embed_audio(self, spec, pcms: list, n_pos: list[int]) -> torch.Tensor:
        """(B, max n_pos, D) audio embeddings; rows past a segment's end are silence (never read: causal)."""
        T = max(n_pos)
        # By-position attention takes its queries 16 frames (4 steps) at a time: whole groups of steps. Steps
        # past a segment's end change nothing before them (everything is causal) and are cut off below.
        steps = -(-T // BY_POSITION_STEPS) * BY_POSITION_STEPS if self.by_position else T
        groups = [(g, pcms[g:g + ENCODE_BATCH]) for g in range(0, len(pcms), ENCODE_BATCH)]
        out = None
        with ThreadPoolExecutor(1) as pool:  # the next group's mel frames on the CPU while the GPU encodes this one
            ahead = pool.submit(self._mel, spec, groups[0][1], steps)
            for i, (g, _) in enumerate(groups):
                mel = ahead.result()
                if i + 1 < len(groups):
                    ahead = pool.submit(self._mel, spec, groups[i + 1][1], steps)
                embeds = self._encode(mel.to(self.device).to(self.dtype))[:, :T]  # (b, T, D); step k's frames are 8k..8k+7
                del mel
                if out is None:
                    out = torch.empty(len(pcms), T, embeds.shape[-1], device=self.device, dtype=self.dtype)
                out[g:g + len(embeds)] = embeds
        return out

    def _mel(self, spec, pcms: list, steps: int) -> torch.Tensor:
        """(b, MELS, 8 steps) float32 log-mel frames of segments behind their pads: on the CPU as the live
        scheduler makes them (frame by frame the same bits, whatever the batch), or on the model's device."""
        signal = torch.from_numpy(padded_signals(spec, pcms, steps))
        if self.mel_on_host:
            torch.set_num_threads(HOST_MEL_THREADS)  # this worker thread's own count (OpenMP's is per thread)
            return self.host_logmel.frames(signal)
        return self.logmel.frames(signal.to(self.device))

    def _encode(self, mel):
        s, emb = self.s, self.s.audio.embedder
        h = F.gelu(_causal_conv(emb.conv1, mel))  # (b, C, 8T)
        h = F.gelu(_causal_conv(emb.conv2, h)).permute(0, 2, 1)  # (b, 4T, C)
        frames = h.shape[1]
        qpos = torch.arange(frames, device=h.device)[None].expand(h.shape[0], -1)
        cos, sin = s.audio.rotary_emb(h, position_ids=qpos)
        for i, layer in enumerate(s.audio.layers):
            x = self._norm(layer.self_attn_layer_norm, h)
            h = h + self._attend_all(layer.self_attn, x, cos, sin, s.audio_window, i)
            h = h + layer.mlp(self._norm(layer.final_layer_norm, h))
        h = self._norm(s.audio.norm, h)
        h = h.reshape(h.shape[0], -1, s.audio_hidden * s.downsample)  # (b, T, 4C)
        return s.projector(h)

    def _norm(self, norm, x, scale=None):
        """The model's RMS norm module on x, times `scale` if given; one fused pass on a GPU."""
        if self.fused_norm:
            return offline_kernels.rms_norm(x, norm, scale)
        return norm(x) if scale is None else norm(x) * scale

    def _attend_all(self, attn, x, cos, sin, window, layer: int):
        """Causal sliding-window self-attention over a whole sequence. x (b, L, D)."""
        if self.by_position and self.fused_encoder:
            return self._attend_by_position(attn, x, cos, sin, window, layer)
        b, L, _ = x.shape
        Dh = attn.head_dim
        if self.fused_encoder:  # positions are 0..L-1 in every row: one table serves the batch
            q = offline_kernels.rope_(attn.q_proj(x).view(b, L, -1, Dh), cos[0], sin[0]).transpose(1, 2)
            k = offline_kernels.rope_(attn.k_proj(x).view(b, L, -1, Dh), cos[0], sin[0]).transpose(1, 2)
        else:
            q = rope(attn.q_proj(x).view(b, L, -1, Dh).transpose(1, 2), cos, sin)  # (b, H, L, Dh)
            k = rope(attn.k_proj(x).view(b, L, -1, Dh).transpose(1, 2), cos, sin)  # (b, Hkv, L, Dh)
        v = attn.v_proj(x).view(b, L, -1, Dh).transpose(1, 2)
        self._prefix_keys(k, v, layer)
        if self.fused_encoder:
            out = offline_kernels.window_attention(q, k, v, window, attn.scaling)  # a (b, L, H, Dh) buffer
        else:
            out = torch.empty_like(q)
            for c0 in range(0, L, QUERY_CHUNK):
                c1, lo = min(L, c0 + QUERY_CHUNK), max(0, c0 - window + 1)
                out[:, :, c0:c1] = _sdpa(q[:, :, c0:c1], k[:, :, lo:c1], v[:, :, lo:c1], _mask(c0, c1, lo, window, x.device), attn.scaling)
        return attn.o_proj(out.transpose(1, 2).reshape(b, L, -1))

    def _attend_by_position(self, attn, x, cos, sin, window, layer: int):
        """The live step's arithmetic over a whole sequence: its one q/k/v product, rotary kernel, and ring
        kernel reading keys by position in the same blocks as the live step reads its ring (attention.py), 16
        queries (4 steps) per query row. x (b, L, D) with L a multiple of 16."""
        b, L, _ = x.shape
        Dh = attn.head_dim
        weight, bias = self.s.audio_qkv[layer]
        proj = F.linear(x, weight, bias)  # (b, L, nq + 2 nk)
        nq, nk = attn.q_proj.weight.shape[0], attn.k_proj.weight.shape[0]
        H, Hkv = nq // Dh, nk // Dh
        offline_kernels.rope_(proj[..., :nq + nk].view(b, L, H + Hkv, Dh), cos[0], sin[0])
        k = proj[..., nq:nq + nk].view(b, L, Hkv, Dh).transpose(1, 2)  # (b, Hkv, L, Dh) views, positions in order
        v = proj[..., nq + nk:].view(b, L, Hkv, Dh).transpose(1, 2)
        self._prefix_keys(k, v, layer)
        G = BY_POSITION_STEPS * self.s.downsample  # queries per row
        rows = L // G
        assert H == Hkv and L % G == 0, (H, Hkv, L)  # the encoder has a KV head per query head
        q = proj[..., :nq].view(b, rows, G, H, Dh).permute(0, 1, 3, 2, 4).reshape(b * rows, H, G, Dh)
        positions = torch.arange(L, device=x.device).view(1, rows, G).expand(b, -1, -1).reshape(b * rows, G)
        out = attention.ring_attention(q, k, v, None, None, positions, positions, window, attn.scaling, linear=True,
                                       rows_per_cache=rows, tuning="encoder")  # (b * rows, Hkv, G, Dh)
        out = out.view(b, rows, H, G, Dh).permute(0, 1, 3, 2, 4).reshape(b, L, nq)
        return attn.o_proj(out)

    def _prefix_keys(self, k, v, layer: int) -> None:
        """The silent start's keys and values as the live stream holds them (prefix.py), in place."""
        if "audio" in self.prefix_rings:
            n = min(k.shape[2], self.prefix.frames)
            k[:, :, :n] = self.prefix.tensors["audio_k"][layer][:, :, :n]
            v[:, :, :n] = self.prefix.tensors["audio_v"][layer][:, :, :n]

    # ---- decoder: one step per position, the prompt's included --------------------------------------
    @torch.no_grad()
    def decode(self, prompt: list[int], delay_steps: int, batch: Batch,
               on_step: Callable[[int, int], None] | None = None) -> list[list[int]]:
        """Output tokens of every segment (from the last prompt position on), greedy, as the live step.

        Each position is one step of the whole batch with static shapes, replayed as a CUDA graph on a
        GPU (a step of about a thousand small kernels costs more to launch one by one than to run); prompt
        positions take the prompt's token as input, as in a live stream. Positions the prompt prefix
        covers are copied from it, not stepped."""
        s, B, T = self.s, len(batch.n_pos), max(batch.n_pos)
        P = len(prompt)
        assert all(n >= P for n in batch.n_pos), "a segment is shorter than its prompt"
        cache = self._cache(B, T)
        start = self._apply_prefix(cache, delay_steps)
        scales = [sc[delay_steps] for sc in s.delay_scales]  # (D,) per layer
        state = _DecodeState.allocate(B, T, self.device)
        state.token.fill_(prompt[start])
        step = lambda: self._step(state, batch.embeds, cache, scales)  # noqa: E731
        if self.device.type == "cuda":
            step = _graphed(step, state, start)
        self._sync()
        started = time.perf_counter()
        for pos in range(start, T):
            if pos < P:
                state.token.fill_(prompt[pos])  # a prompt position: its input is the prompt's, not the last output
            state.pos.fill_(pos)
            step()
            if on_step:
                on_step(pos, T)
        self._sync()
        self._count(B, start, T, time.perf_counter() - started)
        host = state.out.cpu()  # the one sync of the decode loop
        return [host[i, P - 1:n].tolist() for i, n in enumerate(batch.n_pos)]

    def _apply_prefix(self, cache, delay_steps: int) -> int:
        """Copy the prompt prefix's decoder cache for this delay into every row; the first position to step."""
        if "text" not in self.prefix_rings:
            return 0
        n = self.prefix.steps
        for (k_cache, v_cache), k, v in zip(cache, self.prefix.tensors["text_k"], self.prefix.tensors["text_v"]):
            k_cache[:, :, :n] = k[delay_steps - 1]
            v_cache[:, :, :n] = v[delay_steps - 1]
        return n

    def _step(self, st: "_DecodeState", embeds, cache, scales) -> None:
        """One position `st.pos` for every row, shapes fixed: reads st.token, writes st.token and st.out.

        With `fused_step` the same values in fewer passes: each residual add inside the next RMS norm; the
        MLP as the live step computes it (gate and up as one product, SiLU times up in one kernel); q and k
        rotated and k and v written to the cache in one kernel; the greedy choice on the logits as they are
        (bf16 to float32 is exact, so the same argmax)."""
        s, B = self.s, st.token.shape[0]
        hidden = s.text.embed_tokens(st.token)[:, None] + embeds.index_select(1, st.pos)  # (B, 1, D)
        qpos = st.pos.view(1, 1).expand(B, 1)
        cos, sin = s.text.rotary_emb(hidden, position_ids=qpos)
        mask = None
        if not self.ring_kernel:
            mask = ((st.keys <= st.pos) & (st.keys > st.pos - s.text_window))[None, None, None]  # (1, 1, 1, T)
        layers = s.text.layers
        x = self._norm(layers[0].input_layernorm, hidden)
        for i, layer in enumerate(layers):
            if self.fused_decoder:
                attended = self._attend_step_fused(layer.self_attn, self.qkv_weights[i], x, cos[0], sin[0], cache[i], st, qpos)
            else:
                attended = self._attend_step(layer.self_attn, x, cos, sin, cache[i], st.pos, qpos, mask)
            x = self._add_norm(hidden, attended, layer.post_attention_layernorm, scales[i])
            following = layers[i + 1].input_layernorm if i + 1 < len(layers) else s.text.norm
            x = self._add_norm(hidden, self._mlp(i, layer.mlp, x), following)
        logits = s.lm_head(x[:, -1, :])
        token = (logits if self.fused_step else logits.float()).argmax(dim=-1)
        st.token.copy_(token)
        st.out.index_copy_(1, st.pos, token[:, None])

    def _add_norm(self, hidden, delta, norm, scale=None):
        """hidden += delta (in place), then the RMS norm of the sum (times `scale`): one pass when fused."""
        if self.fused_step:
            return offline_kernels.rms_norm(hidden, norm, scale, add=delta)
        hidden += delta
        return self._norm(norm, hidden, scale)

    def _mlp(self, i, mlp, x):
        """Decoder layer i's MLP, fused as the live step computes it (step.ModelStep.mlp)."""
        return self.s.mlp(i, mlp, x) if self.fused_step else mlp(x)

    def _attend_step(self, attn, x, cos, sin, kv, pos, qpos, mask):
        B = x.shape[0]
        Dh = attn.head_dim
        k_cache, v_cache = kv
        q = rope(attn.q_proj(x).view(B, 1, -1, Dh).transpose(1, 2), cos, sin)  # (B, H, 1, Dh)
        k_cache.index_copy_(2, pos, rope(attn.k_proj(x).view(B, 1, -1, Dh).transpose(1, 2), cos, sin))
        v_cache.index_copy_(2, pos, attn.v_proj(x).view(B, 1, -1, Dh).transpose(1, 2))
        H, Hkv = q.shape[1], k_cache.shape[1]
        # Grouped-query heads as rows of their KV head, as the live step does it.
        q = q.reshape(B, Hkv, H // Hkv, Dh)
        if self.ring_kernel:  # reads the cache up to this position only
            out = attention.ring_attention(q.contiguous(), k_cache, v_cache, None, None, qpos, qpos, self.s.text_window,
                                           attn.scaling, linear=True)
        else:
            out = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask, scale=attn.scaling)
        return attn.o_proj(out.reshape(B, 1, H * Dh))

    def _attend_step_fused(self, attn, qkv_weight, x, cos, sin, kv, st: "_DecodeState", qpos):
        """_attend_step with one q/k/v product and rotary embedding in place; cos, sin (1, Dh)."""
        B = x.shape[0]
        Dh = attn.head_dim
        k_cache, v_cache = kv
        Hkv = k_cache.shape[1]
        nk = Hkv * Dh
        qkv = F.linear(x, qkv_weight)  # (B, 1, nq + 2 nk)
        H = qkv.shape[-1] // Dh - 2 * Hkv
        if self.fused_step:  # q and k rotated, k and v written to the cache: one pass
            offline_kernels.rope_store_(qkv, cos, sin, k_cache, v_cache, st.pos)
        else:
            k = offline_kernels.rope_(qkv[..., -2 * nk:-nk].view(B, 1, Hkv, Dh), cos, sin)
            offline_kernels.rope_(qkv[..., :-2 * nk].view(B, 1, H, Dh), cos, sin)
            k_cache.index_copy_(2, st.pos, k.transpose(1, 2))
            v_cache.index_copy_(2, st.pos, qkv[..., -nk:].view(B, 1, Hkv, Dh).transpose(1, 2))
        q = qkv[..., :-2 * nk].view(B, Hkv, H // Hkv, Dh)  # grouped-query heads as rows of their KV head
        out = attention.ring_attention(q, k_cache, v_cache, None, None, qpos, qpos, self.s.text_window, attn.scaling,
                                       linear=True)
        return attn.o_proj(out.reshape(B, 1, H * Dh))

    def _cache(self, B, T):
        t = self.s.text
        a = t.layers[0].self_attn
        Hkv, Dh = t.config.num_key_value_heads, a.head_dim
        shape = (B, Hkv, T, Dh)
        return [(torch.zeros(shape, device=self.device, dtype=self.dtype), torch.zeros(shape, device=self.device, dtype=self.dtype))
                for _ in t.layers]

    def _count(self, B: int, start: int, T: int, seconds: float) -> None:
        """Bytes the steps [start, T) read: the decoder's weights (the LM head's included, the embedding
        rows not) each step, and the cache entries each step's attention reads (all of them under SDPA)."""
        t, s = self.s.text, self.s
        size = torch.finfo(self.dtype).bits // 8
        weights = sum(p.numel() for p in t.layers.parameters()) + sum(p.numel() for p in t.norm.parameters())
        weights = (weights + s.lm_head.weight.numel()) * size
        per_key = 2 * len(t.layers) * B * t.config.num_key_value_heads * t.layers[0].self_attn.head_dim * size
        window = s.text_window
        keys = sum(min(pos + 1, window) if self.ring_kernel else T for pos in range(start, T))
        self.decoder.steps += T - start
        self.decoder.seconds += seconds
        self.decoder.bytes_read += (T - start) * weights + keys * per_key


def _room_for(attns, device) -> bool:
    """Whether the fused q/k/v copy leaves several GiB free (a worker whose live pool took nearly all the
    memory keeps the three products and its memory for segments)."""
    size = sum(p.numel() * p.element_size() for a in attns for p in (a.q_proj.weight, a.k_proj.weight, a.v_proj.weight))
    free, _ = torch.cuda.mem_get_info(device)
    return free > size + 8 * GIB


@dataclass
class _DecodeState:
    """The static tensors a decode step (and its CUDA graph) reads and writes."""

    token: torch.Tensor  # (B,) long: input token of this step, overwritten by its output
    pos: torch.Tensor  # (1,) long: the position of this step
    keys: torch.Tensor  # (T,) long: key positions 0..T-1
    out: torch.Tensor  # (B, T) long: the output token at each position

    @classmethod
    def allocate(cls, B: int, T: int, device) -> "_DecodeState":
        return cls(token=torch.zeros(B, dtype=torch.long, device=device), pos=torch.zeros(1, dtype=torch.long, device=device),
                   keys=torch.arange(T, device=device), out=torch.zeros(B, T, dtype=torch.long, device=device))


def _graphed(step, state: _DecodeState, first_pos: int):
    """`step` captured as a CUDA graph. The warm-up run writes position `first_pos`, which the first real
    step writes again; the input token is restored."""
    token = state.token.clone()
    state.pos.fill_(first_pos)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # eager warm-up: kernels chosen, workspaces allocated
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    state.token.copy_(token)
    return graph.replay


def _causal_conv(conv, x):
    """The model's causal convolution with zero history (a fresh stream's), over a whole sequence."""
    history = conv.kernel_size[0] - conv.stride[0]
    return conv1d(conv, F.pad(x, (history, 0)))


def _mask(q0, q1, k0, window, device):
    """(1, 1, q1-q0, q1-k0) bool for queries [q0, q1) over keys [k0, q1): causal sliding window."""
    q = torch.arange(q0, q1, device=device)[:, None]
    k = torch.arange(k0, q1, device=device)[None, :]
    return ((k <= q) & (k > q - window))[None, None]


def _sdpa(q, k, v, mask, scale):
    """q (b, H, L, Dh) over k/v (b, Hkv, S, Dh); KV heads repeated for grouped-query attention."""
    if k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def segment_transcript(spec, tokens: list[int], delay_ms: int, samples: int, pieces: dict | None = None) -> Transcript:
    """A segment's transcript by the live stream's rules (StreamState.accept and .transcript): token k covers
    [80k, 80k + 80) ms clamped to the audio's end; special tokens have no text; a token whose bytes end
    inside a UTF-8 character waits for the next. `pieces` caches the text of single tokens across calls
    (the tokenizer's decode is most of the cost; decoding one token always gives the same text)."""
    pieces = {} if pieces is None else pieces
    end = samples * 1000 // A.SAMPLE_RATE
    out, pending = [], []
    for k, token in enumerate(tokens):
        text = ""
        if token not in spec.special_ids:
            pending.append(token)
            if len(pending) == 1:
                text = pieces.get(token)
                if text is None:
                    text = pieces[token] = spec.decode(pending)
            else:
                text = spec.decode(pending)
            if text.endswith("\ufffd"):
                text = ""  # a multi-byte character split across tokens: wait for the rest
            else:
                pending = []
        out.append(TokenTime(token, text, min(k * A.STEP_MS, end), min((k + 1) * A.STEP_MS, end)))
    full = spec.decode([t for t in tokens if t not in spec.special_ids])
    return Transcript(text=full, tokens=tuple(out), delay_ms=delay_ms, duration_ms=end)
