// Runs on the audio thread: low-pass, resample to 16 kHz mono, and cut into 80 ms frames of 16-bit
// samples (1,280 samples, 2,560 bytes), each posted with its level (RMS, 0 to 1).
const TARGET_RATE = 16000;
const FRAME_SAMPLES = 1280; // 16,000 samples/s × 80 ms
const TAPS = 31;

function lowPass(rate) {
  // Windowed-sinc FIR with its cut-off below the new Nyquist frequency (8 kHz), so nothing folds back.
  const fc = 7200 / rate;
  const mid = (TAPS - 1) / 2;
  const h = new Float32Array(TAPS);
  let sum = 0;
  for (let n = 0; n < TAPS; n++) {
    const x = n - mid;
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / (TAPS - 1));
    h[n] = sinc * hann;
    sum += h[n];
  }
  return h.map((v) => v / sum);
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.filter = this.step > 1 ? lowPass(sampleRate) : null;
    this.history = new Float32Array(TAPS);
    this.k = 0; // input samples seen
    this.t = 0; // input-sample position of the next output sample
    this.prev = 0;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.n = 0;
    this.sumSquares = 0;
  }

  filtered(x) {
    if (!this.filter) return x;
    this.history.copyWithin(0, 1);
    this.history[TAPS - 1] = x;
    let y = 0;
    for (let i = 0; i < TAPS; i++) y += this.history[i] * this.filter[i];
    return y;
  }

  emit(y) {
    const s = Math.max(-1, Math.min(1, y));
    this.frame[this.n++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    this.sumSquares += s * s;
    if (this.n === FRAME_SAMPLES) {
      const level = Math.sqrt(this.sumSquares / FRAME_SAMPLES);
      const pcm = this.frame.buffer;
      this.port.postMessage({ pcm, level }, [pcm]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.n = 0;
      this.sumSquares = 0;
    }
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const cur = this.filtered(channel[i]);
      // Linear interpolation between input samples k-1 and k for every output time that falls there.
      while (this.t <= this.k) {
        const frac = this.t - (this.k - 1);
        this.emit(this.prev + (cur - this.prev) * frac);
        this.t += this.step;
      }
      this.prev = cur;
      this.k += 1;
    }
    return true;
  }
}

registerProcessor("capture-16k", CaptureProcessor);
