"""A Python livekit-agents agent driving a remote avatar, as a Python user would write one.

It joins a LiveKit room as the agent (a token made with livekit-api from LIVEKIT_URL, LIVEKIT_API_KEY and
LIVEKIT_API_SECRET) and speaks through livekit-agents' own ``DataStreamAudioOutput`` (the output an
AgentSession uses for an avatar, ``wait_remote_track=KIND_VIDEO``, ``wait_playback_start=True``): per segment,
``capture_frame`` for each 20 ms frame of espeak-ng speech converted to the segment's layout, ``flush()``, then
``wait_for_playout()`` under a timeout. One segment is cut with ``clear_buffer()`` while it plays.

Segments (rate in Hz, channels): mono 24000, stereo 48000, mono 24000 cleared 0.8 s after it started playing
(its playback_started event), stereo 48000 after the clear.

Output: JSON lines on stdout, ``{"event": ...}``:
  start      livekit_agents (version), room, agent, avatar
  started    segment, at_s: a playback_started event (the avatar's lk.playback_started), seconds after its capture began
  segment    name, sample_rate, channels, seconds (audio captured), cleared_after_s (seconds from its
             playback_started to its clear_buffer(), or null),
             playback_position, interrupted (what wait_for_playout returned), wait_s
  log        level, logger, message: a warning or error of the livekit loggers
  done       answers: lk.playback_finished RPCs the output received from the avatar
Exit 0 when every wait returned; 1 with ``{"event": "error", "message": ...}`` when one timed out or failed.

usage: avatar_agent.py --room R [--identity agent] [--avatar agent-avatar] [--timeout 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
from livekit import api, rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput

FRAME_MS = 20
LEAVE_DELAY_S = 0.25  # leaving at once would abort the reply to the avatar's last RPC


@dataclass(frozen=True)
class Segment:
    name: str
    sample_rate: int
    channels: int
    text: str
    clear_after_s: float | None = None


SEGMENTS = (
    Segment("mono 24 kHz", 24_000, 1, "Hello! I am a Python agent, speaking through the avatar."),
    Segment("stereo 48 kHz", 48_000, 2, "This sentence arrives in stereo, at forty eight kilohertz."),
    Segment(
        "mono 24 kHz, cleared",
        24_000,
        1,
        "This is a long sentence that the agent will not be allowed to finish, because the user interrupts it.",
        clear_after_s=0.8,
    ),
    Segment("stereo 48 kHz after the clear", 48_000, 2, "Sorry, go ahead."),
)


def print_event(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def speech(text: str, sample_rate: int, channels: int) -> np.ndarray:
    """espeak-ng's speech for ``text`` as int16 samples, interleaved, at ``sample_rate`` Hz on ``channels`` channels."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-v", "en", "-s", "175", "-w", path, text], check=True, capture_output=True)
        with wave.open(path, "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ValueError(f"espeak-ng wrote {w.getnchannels()} channel(s) of {8 * w.getsampwidth()} bits; expected mono s16")
            rate = w.getframerate()
            mono = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    n = round(len(mono) * sample_rate / rate)
    resampled = np.interp(np.arange(n) * rate / sample_rate, np.arange(len(mono)), mono)
    return np.repeat(np.round(resampled).astype(np.int16), channels)


def frames(samples: np.ndarray, sample_rate: int, channels: int) -> list[rtc.AudioFrame]:
    """``samples`` (interleaved) as FRAME_MS rtc frames, the last one shorter."""
    size = sample_rate * FRAME_MS // 1000
    total = len(samples) // channels
    out = []
    for at in range(0, total, size):
        n = min(size, total - at)
        out.append(rtc.AudioFrame(samples[at * channels : (at + n) * channels].tobytes(), sample_rate, channels, n))
    return out


class LivekitRecords(logging.Handler):
    """Prints the livekit loggers' warnings and errors, and counts the playback_finished RPCs the output accepted."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.answers = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message == "playback finished event received":
            self.answers += 1
        if record.levelno >= logging.WARNING:
            print_event("log", level=record.levelname, logger=record.name, message=message)


def agent_token(room: str, identity: str) -> str:
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not key or not secret:
        raise ValueError("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set")
    return (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_kind("agent")
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )


async def speak(out: DataStreamAudioOutput, avatar: str, segment: Segment, index: int, timeout: float) -> None:
    """Captures the segment's speech and flushes it, then waits for its playout. A cleared segment gets its
    clear_buffer() ``clear_after_s`` after its playback_started (the avatar's lk.playback_started), then the flush."""
    samples = speech(segment.text, segment.sample_rate, segment.channels)
    captured = frames(samples, segment.sample_rate, segment.channels)
    began = time.monotonic()
    playing = asyncio.get_running_loop().create_future()

    def started(_ev: object) -> None:
        print_event("started", segment=index, at_s=round(time.monotonic() - began, 3))
        if not playing.done():
            playing.set_result(time.monotonic())

    out.on("playback_started", started)
    try:
        try:
            await asyncio.wait_for(_capture(out, captured), timeout)
        except asyncio.TimeoutError as e:
            raise TimeoutError(f"segment {index}: capture_frame did not return within {timeout} s (the avatar {avatar} must join and publish its video)") from e
        cleared_at = None
        if segment.clear_after_s is not None:
            try:
                started_at = await asyncio.wait_for(asyncio.shield(playing), timeout)
            except asyncio.TimeoutError as e:
                raise TimeoutError(f"segment {index} ({segment.name}): no playback_started within {timeout} s") from e
            await asyncio.sleep(max(0.0, started_at + segment.clear_after_s - time.monotonic()))
            cleared_at = time.monotonic() - started_at
            out.clear_buffer()
        out.flush()
        waited = time.monotonic()
        try:
            done = await asyncio.wait_for(out.wait_for_playout(), timeout)
        except asyncio.TimeoutError as e:
            raise TimeoutError(f"segment {index} ({segment.name}): wait_for_playout did not return within {timeout} s") from e
    finally:
        out.off("playback_started", started)
    print_event(
        "segment",
        name=segment.name,
        sample_rate=segment.sample_rate,
        channels=segment.channels,
        seconds=sum(f.duration for f in captured),
        cleared_after_s=None if cleared_at is None else round(cleared_at, 3),
        playback_position=done.playback_position,
        interrupted=done.interrupted,
        wait_s=round(time.monotonic() - waited, 3),
    )


async def _capture(out: DataStreamAudioOutput, captured: list[rtc.AudioFrame]) -> None:
    for f in captured:
        await out.capture_frame(f)


async def main() -> int:
    parser = argparse.ArgumentParser(description="A Python livekit-agents agent speaking through a remote avatar.")
    parser.add_argument("--room", required=True)
    parser.add_argument("--identity", default="agent")
    parser.add_argument("--avatar", default="agent-avatar")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for the avatar to come and for each wait_for_playout")
    args = parser.parse_args()
    url = os.environ.get("LIVEKIT_URL")
    if not url:
        raise ValueError("LIVEKIT_URL must be set")

    records = LivekitRecords()
    livekit_log = logging.getLogger("livekit")
    livekit_log.setLevel(logging.INFO)
    livekit_log.addHandler(records)
    livekit_log.propagate = False

    print_event("start", livekit_agents=version("livekit-agents"), room=args.room, agent=args.identity, avatar=args.avatar)
    room = rtc.Room()
    await room.connect(url, agent_token(args.room, args.identity), rtc.RoomOptions(rtc_config=rtc.RtcConfiguration(ice_servers=[])))
    try:
        out = DataStreamAudioOutput(
            room,
            destination_identity=args.avatar,
            wait_remote_track=rtc.TrackKind.KIND_VIDEO,
            wait_playback_start=True,
        )
        for index, segment in enumerate(SEGMENTS):
            await speak(out, args.avatar, segment, index, args.timeout)
        await asyncio.sleep(LEAVE_DELAY_S)
        print_event("done", answers=records.answers)
        return 0
    finally:
        await room.disconnect()


async def run() -> int:
    """main(); any failure is one error line."""
    try:
        return await main()
    except Exception as e:
        print_event("error", message=f"{type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    code = asyncio.run(run())
    sys.stdout.flush()
    sys.stderr.flush()
    # livekit.rtc's FFI threads can still call into Python while the interpreter finalizes (seen once on a loaded
    # machine, after the room had disconnected: a Rust abort, "panic in a function that cannot unwind"); every
    # result is printed and the room left by now, so leave without finalizing.
    os._exit(code)
