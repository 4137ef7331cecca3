"""The whole-system live benchmark's core, briefly: one host through Daphne with the tiny engine, one follower."""
import sys
from pathlib import Path

import pytest

from tests.servers import daphne_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "benchmarks"))

import live_system_bench as bench  # noqa: E402


@pytest.mark.django_db(transaction=True)
def test_a_caption_reaches_the_follower_with_a_finite_lag_from_the_frame_it_needed(tiny_model_dir, tmp_path):
    pairs = bench.make_pairs(bench.make_users(1), 1, run=0)
    cfg = bench.client_config(1, seconds=5, warmup_s=1.0)
    with daphne_server(tmp_path, **bench.server_env(tiny_model_dir, device="cpu", max_streams=2)) as base:
        bench.wait_for_engine(120)
        row = bench.measure(base, pairs, cfg, procs=1)
    assert row["tokens"] > 0, row
    assert row["refused"] == 0 and row["early"] == 0, row
    # Never before the frame that completed the token's audio was sent, and not seconds after it.
    assert 0 < row["lag_ms_min"] <= row["lag_ms_p95"] < 5000, row
    assert row["admitted_max"] == 2 and row["step_ms_p95"] is not None, row
    # The lag splits into its parts: the way to the engine's step, the way back to the host's server, the fan-out.
    assert 0 < row["made_ms_p50"] <= row["lag_ms_p95"] and row["back_ms_p50"] >= 0 and row["fanout_ms_p50"] >= 0, row


@pytest.mark.django_db(transaction=True)
def test_with_a_caption_worker_the_streams_go_to_it_and_the_run_ends_with_none_left(tiny_model_dir, tmp_path):
    pairs = bench.make_pairs(bench.make_users(2), 2, run=0)
    cfg = bench.client_config(2, seconds=5, warmup_s=1.0)
    env = bench.server_env(tiny_model_dir, device="cpu", max_streams=2)
    with bench.CaptionWorkers(tmp_path, 1, env, gpus=0) as workers, daphne_server(tmp_path, **{**env, "SCRIBE_ASR_LIVE_ENGINE": "worker"}) as base:
        workers.wait_ready(120)
        row = bench.measure(base, pairs, cfg, procs=1, read=workers.report, idle_timeout_s=30)
        assert workers.report()["active_streams"] == 0
    assert row["tokens"] > 0 and row["refused"] == 0 and row["early"] == 0 and not row["errors"], row
    assert row["admitted_max"] == 2 and row["worker_streams"] == [2] and row["step_ms_p95"] is not None, row
    assert 0 < row["made_ms_p50"] <= row["lag_ms_p95"] and row["back_ms_p50"] >= 0, row
    assert all(proc.poll() is not None for proc in workers.procs)
    # The worker says where a frame's time went on its way to it.
    assert "audio from the servers p50" in workers.logs[0].read_text()


def test_a_run_whose_streams_do_not_end_says_how_many_are_left():
    assert bench.wait_for_idle_engine(lambda: {"active_streams": 3}, timeout_s=0) == 3
    assert bench.wait_for_idle_engine(lambda: None, timeout_s=0) is None
    assert bench.wait_for_idle_engine(lambda: {"active_streams": 0}, timeout_s=60) == 0
