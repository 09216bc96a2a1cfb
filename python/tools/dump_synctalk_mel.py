"""Dump SyncTalk's audio front-end reference for a 16 kHz mono 16-bit PCM WAV.

usage: python3 python/tools/dump_synctalk_mel.py <in.wav> <out-dir>

Writes to <out-dir>:
  mel.f64   float64 little-endian, n_mel x 80, frame-major (mel frame k = row k)
  ave.json  {"samples", "n_mel", "window_count", "window_starts", "feature_windows", "frames", "attention"}
            where "frames" is the number of video frames SyncTalk renders (one per audio feature) and
            "attention"[i] are the 8 feature indices of frame i (-1 = zero padding).
"""

from __future__ import annotations

import json
import sys
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synctalk_live import mel  # noqa: E402


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != mel.SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(
                f"expected 16000 Hz mono 16-bit PCM, got {w.getframerate()} Hz, "
                f"{w.getnchannels()} channels, {8 * w.getsampwidth()}-bit"
            )
        data = w.readframes(w.getnframes())
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768)).astype(np.float32)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src, out = Path(argv[1]), Path(argv[2])
    try:
        wav = read_wav(src)
    except (OSError, EOFError, ValueError, wave.Error) as e:
        print(f"{src}: {e}", file=sys.stderr)
        return 1
    spec = mel.melspectrogram(wav).T
    n_mel = spec.shape[0]
    count = mel.window_count(n_mel)
    features = mel.feature_windows(count)
    out.mkdir(parents=True, exist_ok=True)
    spec.astype("<f8").tofile(out / "mel.f64")
    meta = {
        "samples": int(len(wav)),
        "n_mel": int(n_mel),
        "window_count": count,
        "window_starts": mel.window_starts(n_mel),
        "feature_windows": features,
        "frames": len(features),
        "attention": [mel.attention_slots(len(features), i) for i in range(len(features))],
    }
    (out / "ave.json").write_text(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
