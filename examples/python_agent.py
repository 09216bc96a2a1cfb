"""A Python voice agent (livekit-agents 1.x) that speaks through the synctalk-live avatar worker.

    pip install "livekit-agents>=1.2,<2"           # plus the plugins of the models you pick (see MODELS)
    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... python examples/python_agent.py dev

The avatar worker (``node dist/workers/avatar-worker.js start``, or ``scripts/start.sh``) must be registered
with the same LiveKit server. Per room this agent:

1. asks for an avatar: an explicit dispatch of the agent named ``synctalk-avatar`` with the metadata
   ``{"agentIdentity": <this agent's identity>, "avatarIdentity": "<identity>-avatar"}`` (the avatar worker
   rejects a dispatch without both, see src/agent/avatar-dispatch.ts);
2. sends its speech to that avatar instead of publishing it: ``DataStreamAudioOutput`` (one ``lk.audio_stream``
   byte stream per reply, s16le PCM at the TTS's own rate and channels, mono or stereo);
3. waits, with a timeout, for the avatar to join and publish its video; without it the job ends with one log
   line instead of a reply that would wait forever.

The avatar publishes the voice and the face together (``avatar_audio``, ``avatar_video``) with the attribute
``lk.publish_on_behalf`` = this agent, and answers ``lk.playback_started`` / ``lk.playback_finished`` /
``lk.clear_buffer``, so interruptions and transcripts work as with any LiveKit avatar plugin.
Details: docs/python-agent.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Literal

from livekit import api, rtc
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    cli,
    get_job_context,
    room_io,
)
from livekit.agents.voice.avatar import AvatarSession, DataStreamAudioOutput

logger = logging.getLogger("synctalk-python-agent")

AVATAR_AGENT_NAME = "synctalk-avatar"
"""The agent name the avatar worker registers with (explicit dispatch only)."""

DISPATCH_TIMEOUT = float(os.environ.get("SYNCTALK_DISPATCH_TIMEOUT", "10"))
"""Seconds the dispatch request to the LiveKit API may take."""

AVATAR_JOIN_TIMEOUT = float(os.environ.get("SYNCTALK_AVATAR_JOIN_TIMEOUT", "30"))
"""Seconds for the avatar to join and publish its video after the dispatch (a cold worker loads its model first)."""

MODELS = {
    # LiveKit Inference model names (LiveKit Cloud). On a self-hosted server, pass plugin objects instead,
    # e.g. stt=google.STT(), llm=google.LLM(), tts=google.TTS() from livekit-plugins-google.
    "stt": os.environ.get("SYNCTALK_STT", "deepgram/nova-3"),
    "llm": os.environ.get("SYNCTALK_LLM", "openai/gpt-4.1-mini"),
    "tts": os.environ.get("SYNCTALK_TTS", "cartesia/sonic-2"),
}

INSTRUCTIONS = (
    "You are a friendly assistant that the user sees as a talking face. Answer in one to three short "
    "spoken sentences, in plain words: no lists, markdown, emoji or URLs."
)


class SynctalkAvatar(AvatarSession[Literal["metrics_collected"]]):
    """The synctalk-live avatar for one room: dispatches it, and routes the session's audio to it.

    ``start`` must be called after ``ctx.connect()`` and before ``AgentSession.start`` (so the session's
    transcription follows the avatar's playback), and the session started with the room's audio output off.
    """

    def __init__(
        self,
        *,
        avatar_identity: str | None = None,
        agent_name: str = AVATAR_AGENT_NAME,
        dispatch_timeout: float = DISPATCH_TIMEOUT,
        sample_rate: int | None = None,
    ) -> None:
        super().__init__()
        self._avatar_identity = avatar_identity
        self._agent_name = agent_name
        self._dispatch_timeout = dispatch_timeout
        # None: the TTS's own rate (the avatar accepts 8 to 192 kHz and converts)
        self._sample_rate = sample_rate

    @property
    def avatar_identity(self) -> str:
        if self._avatar_identity is None:
            raise RuntimeError("SynctalkAvatar: start() has not run yet")
        return self._avatar_identity

    @property
    def provider(self) -> str:
        return "synctalk-live"

    async def start(self, agent_session: AgentSession[None], room: rtc.Room) -> None:
        agent_identity = room.local_participant.identity
        if self._avatar_identity is None:
            self._avatar_identity = f"{agent_identity}-avatar"
        metadata = json.dumps({"agentIdentity": agent_identity, "avatarIdentity": self._avatar_identity})
        dispatch = await asyncio.wait_for(
            get_job_context().api.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=self._agent_name, room=room.name, metadata=metadata)
            ),
            timeout=self._dispatch_timeout,
        )
        logger.info("avatar dispatched", extra={"dispatch_id": dispatch.id, "avatar_identity": self._avatar_identity})
        await super().start(agent_session, room)
        agent_session.output.audio = DataStreamAudioOutput(
            room,
            destination_identity=self._avatar_identity,
            sample_rate=self._sample_rate,
            # send nothing before the avatar can show it
            wait_remote_track=rtc.TrackKind.KIND_VIDEO,
            # the avatar sends lk.playback_started when the first frame of a reply plays
            wait_playback_start=True,
            # lk.clear_buffer is answered by lk.playback_finished(interrupted); give up waiting after this
            clear_buffer_timeout=2.0,
        )


server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session: AgentSession[None] = AgentSession(stt=MODELS["stt"], llm=MODELS["llm"], tts=MODELS["tts"])
    avatar = SynctalkAvatar()
    try:
        await avatar.start(session, ctx.room)
    except (TimeoutError, api.TwirpError) as e:
        logger.error("cannot dispatch the avatar (%s): is the LiveKit API reachable with these credentials?", e)
        ctx.shutdown(reason="avatar dispatch failed")
        return
    await session.start(
        agent=Agent(instructions=INSTRUCTIONS),
        room=ctx.room,
        # the avatar publishes the voice; the agent publishes no audio track of its own
        room_options=room_io.RoomOptions(audio_output=False),
    )
    try:
        await avatar.wait_for_join(timeout=AVATAR_JOIN_TIMEOUT)
    except TimeoutError:
        logger.error(
            "the avatar did not join within %.0f s: is an avatar worker (agent name %r) registered with this server?",
            AVATAR_JOIN_TIMEOUT,
            AVATAR_AGENT_NAME,
        )
        ctx.shutdown(reason="no avatar")
        return
    session.generate_reply(instructions="Greet the user in one short sentence and ask how you can help.")


if __name__ == "__main__":
    cli.run_app(server)
