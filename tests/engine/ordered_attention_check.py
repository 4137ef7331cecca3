"""Run by test_attention.py with TRITON_INTERPRET=1: the encoder's attention read by position, live and offline."""
import torch
import torch.nn.functional as F

from transcription.engine import attention


def live_and_offline(seed, H=2, D=16, steps=24, L=4, window=30, ring=48, block=16):
    """A sequence's encoder attention two ways: live, a ring of `ring` entries written L frames a step and read
    by position after each write (it wraps several times); offline, the whole sequence's keys in position order
    with 16 queries (four steps) per query row. Returns (values that differ between the two, error against SDPA)."""
    attention.TUNING["encoder"] = dict(attention.TUNING["encoder"], block_n=block)  # several blocks at this size
    g = torch.Generator().manual_seed(seed)
    frames = steps * L
    q, k, v = (torch.randn(1, H, frames, D, generator=g) for _ in range(3))
    k_ring, v_ring = torch.randn(1, H, ring, D, generator=g), torch.randn(1, H, ring, D, generator=g)  # stale contents
    key_pos = torch.full((1, ring), -1, dtype=torch.long)
    outs = []
    for t in range(steps):
        p = torch.arange(t * L, (t + 1) * L)
        k_ring[:, :, p % ring], v_ring[:, :, p % ring], key_pos[0, p % ring] = k[:, :, p], v[:, :, p], p
        outs.append(attention.ring_attention(q[:, :, p].contiguous(), k_ring, v_ring, None, None, key_pos, p[None], window,
                                             D ** -0.5, ordered=True, tuning="encoder"))
    live = torch.cat(outs, dim=2)
    rows = frames // 16
    q_rows = q.view(1, H, rows, 16, D).permute(0, 2, 1, 3, 4).reshape(rows, H, 16, D).contiguous()
    positions = torch.arange(frames).view(rows, 16)
    whole = attention.ring_attention(q_rows, k, v, None, None, positions, positions, window, D ** -0.5, linear=True,
                                     rows_per_cache=rows, tuning="encoder")
    whole = whole.view(1, rows, H, 16, D).permute(0, 2, 1, 3, 4).reshape(1, H, frames, D)
    i = torch.arange(frames)
    mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=D ** -0.5)
    return int((live != whole).sum()), float((live - ref).norm() / ref.norm())


if __name__ == "__main__":
    for seed, ring, block in ((0, 48, 16), (1, 64, 16), (2, 64, 32)):
        differ, err = live_and_offline(seed, ring=ring, block=block)
        print(differ, err)
