"""Reference (numpy only) of SyncTalk's audio front-end for the 'ave' audio model.

It recomputes what SyncTalk does offline (nerf_triplane/utils.py melspectrogram + AudDataset,
nerf_triplane/provider.py alignment padding, get_audio_features att_mode 2) without librosa or scipy,
so that the streaming TypeScript implementation (src/synctalk/mel.ts, src/synctalk/ave-windows.ts,
src/synctalk/audio-attention-windows.ts) can be tested against it.

Units: audio is 16 kHz mono float (int16 / 32768 as librosa.load gives it); mel frames are 12.5 ms apart
(hop 200 samples), frame k centred on sample 200k; video frames are 25 fps.

Mel (Wav2Lip hparams as SyncTalk uses them):
  pre-emphasis y[n] = x[n] - 0.97 x[n-1] (scipy.signal.lfilter([1, -0.97], [1], x), zero initial state, float64);
  STFT n_fft 800, hop 200, periodic Hann window of 800, center=True with zero ('constant', librosa >= 0.10) padding
  of 400 samples on each side, magnitude |D|;
  mel basis as librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600) (Slaney scale, norm 'slaney',
  float32 weights);
  S = 20 log10(max(1e-5, mel)) - 20, normalised clip(8 (S + 100) / 100 - 4, -4, 4).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
#: mel frames per AVE window (the AVE input is [1, 80, 16])
WINDOW_FRAMES = 16
#: video frames per second
FPS = 25
#: mel frames per second
MEL_FPS = 80


def preemphasis(wav: np.ndarray, k: float = PREEMPHASIS) -> np.ndarray:
    """lfilter([1, -k], [1], wav): FIR with zero initial state, in float64 like scipy's result."""
    x = np.asarray(wav, dtype=np.float64)
    y = x.copy()
    y[1:] = x[1:] - k * x[:-1]
    return y


def hann_periodic(n: int) -> np.ndarray:
    """scipy.signal.get_window('hann', n, fftbins=True), computed the way scipy's general_cosine does."""
    fac = np.linspace(-np.pi, np.pi, n + 1)
    return (0.5 + 0.5 * np.cos(fac))[:n]


def stft_magnitude(y: np.ndarray) -> np.ndarray:
    """|librosa.stft(y, n_fft=800, hop_length=200, win_length=800, center=True, pad_mode='constant')|, [401, n_frames]."""
    padded = np.pad(y, (N_FFT // 2, N_FFT // 2), mode="constant")
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    frames = padded[idx] * hann_periodic(N_FFT)[None, :]
    return np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)).T


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa.hz_to_mel, htk=False)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = f >= min_log_hz
    mels = np.where(log_t, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels)
    return mels


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    """Inverse of hz_to_mel (librosa.mel_to_hz, htk=False)."""
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = m >= min_log_mel
    return np.where(log_t, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filters() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600), [80, 401] float32."""
    weights = np.zeros((N_MELS, 1 + N_FFT // 2), dtype=np.float32)
    fftfreqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS])
    weights *= enorm[:, np.newaxis]
    return weights


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """SyncTalk's melspectrogram(wav): normalised log-mel, [80, n_mel] with n_mel = 1 + len(wav) // 200."""
    mag = stft_magnitude(preemphasis(wav))
    mel = np.dot(mel_filters(), mag)
    min_level = np.exp(-5 * np.log(10))
    s = 20 * np.log10(np.maximum(min_level, mel)) - 20
    return np.clip((2 * 4.0) * ((s - -100) / (--100)) - 4.0, -4.0, 4.0)


def window_count(n_mel: int) -> int:
    """AudDataset.data_len: the number of AVE windows (float expression kept as SyncTalk writes it)."""
    return int((n_mel - WINDOW_FRAMES) / float(MEL_FPS) * float(FPS)) + 2


def window_starts(n_mel: int) -> list[int]:
    """First mel frame of each AVE window w = 0 .. window_count - 1, end-clamped like AudDataset.crop_audio_window."""
    starts = []
    for w in range(window_count(n_mel)):
        start = int(float(MEL_FPS) * (w / float(FPS)))
        if start + WINDOW_FRAMES > n_mel:
            start = n_mel - WINDOW_FRAMES
        starts.append(start)
    return starts


def feature_windows(n_windows: int) -> list[int]:
    """Alignment padding [out0, out0, out..., out-1, out-1]: the AVE window behind each audio feature."""
    return [0, 0, *range(n_windows), n_windows - 1, n_windows - 1]


def attention_slots(n_features: int, frame: int) -> list[int]:
    """get_audio_features(att_mode=2): feature indices frame-4 .. frame+3, -1 where SyncTalk pads with zeros."""
    return [j if 0 <= j < n_features else -1 for j in range(frame - 4, frame + 4)]
