"""The ring kernels (Triton), run in Triton's CPU interpreter: attention equals SDPA on the engine's masks, and
the ring write equals the PyTorch step's, and the whole fused step the model's modules."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
ROOT = Path(__file__).resolve().parents[2]


def test_the_ring_kernel_matches_sdpa_on_partly_filled_wrapped_rings_bf16_layout_and_fp8_and_skips_idle_rows():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tests.engine.ring_attention_check"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    errors = [(line.split()[0] == "True", float(line.split()[1])) for line in out.stdout.split("\n") if line.strip()]
    assert len(errors) == 5, out.stdout
    for fp8, err in errors:
        # float32 inputs: the kernel's own rounding only; fp8 rings are multiplied in float16 (attention.TUNING)
        assert err < (1e-3 if fp8 else 1e-5), errors


def test_the_ring_store_kernel_writes_what_the_pytorch_step_writes_and_leaves_rows_without_audio_alone():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tests.engine.ring_store_check"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True"] * 4, out.stdout


def test_the_fused_live_step_computes_what_the_model_modules_compute_over_wrapped_rings_with_idle_rows():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tests.engine.fused_step_check"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    hidden_err, ring_err, same_positions = out.stdout.split()
    # float32: only the norm's order of summation differs, so a few units in the last place
    assert float(hidden_err) < 1e-5 and float(ring_err) < 1e-5 and same_positions == "True", out.stdout


def test_the_encoders_attention_read_by_position_gives_the_same_bits_live_from_a_wrapping_ring_and_offline():
    """Why it matters: a recording's segments are transcribed offline, and their words must be the ones the
    live step would have given; the encoder's ring wraps every few seconds, so it is read by position."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tests.engine.ordered_attention_check"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.split("\n") if line.strip()]
    assert len(rows) == 3, out.stdout
    for differ, err in rows:
        assert int(differ) == 0 and float(err) < 1e-5, rows


def test_the_offline_decoder_steps_one_pass_kernels_keep_the_live_steps_tokens():
    """Why it matters: the decoder step of a recording's transcription is fused for speed (the residual add
    inside the norm, SiLU times up, one rotary pass and one cache write), and its words must stay the ones
    the live captions would have given."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tests.engine.step_fusion_check"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    silu_err, add_norm_exact, same_as_before, same_as_live, distinct = out.stdout.split()[-5:]
    assert float(silu_err) < 1e-5 and add_norm_exact == "True", out.stdout  # float32, numpy's exp in the interpreter
    assert same_as_before == "True" and same_as_live == "True" and int(distinct) > 5, out.stdout
