"""The reprocessing benchmark runs end to end on a CPU with the tiny model (CI smoke test)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_reprocessing_benchmark_writes_its_figures_on_a_cpu(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "PYANNOTE_METRICS_ENABLED": "0"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "reprocess_bench.py"), "--tiny", "--hours", "0.004", "--no-diarization",
           "--agreement-segments", "2", "--agreement-s", "3", "--workdir", str(tmp_path), "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {"date", "hours", "device", "stages", "total_s", "x_realtime", "token_agreement"} <= result.keys()
    assert result["device"] == "cpu" and result["hours"] == 0.004
    assert {"decode", "transcription", "alignment", "store"} <= result["stages"].keys()
    assert result["runs"][0]["detail"]["transcription"]["words"] > 0
    assert result["token_agreement"] == 1.0  # float32 on a CPU: the prefill path is exact
