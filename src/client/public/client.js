// The test client: joins a room with a token from /token, shows the avatar's video, plays its audio and
// publishes the microphone when the browser allows it. No ICE servers are configured (rtcConfig
// iceServers: []): the page talks only to the LiveKit server's own candidates.
// Query parameters: room, identity, mic=0 (do not publish the microphone), autojoin=1 (join on load).
// State for tests and debugging, as data-* attributes: data-participant on #avatar and #avatar-audio (whose
// track each element plays, removed when it goes), data-mic on #status ('published' once the microphone is).
//
// Live figures, under the video:
// - frame rate here: frames the <video> presented in the last second (requestVideoFrameCallback);
// - A/V offset at the avatar: the avatar participant's attribute `synctalk.av_offset_ms`, which the avatar
//   worker updates every 2 s (src/metrics/room-figures.ts; ms its audio starts after its video);
// - first frame after joining: from pressing Join to the first avatar frame presented.
// Each figure's element carries its number in data-value. Transcript: the `lk.transcription` text streams that
// agents (agents-js and Python livekit-agents 1.x) send for the agent's speech and the user's recognised words,
// one list item per segment (lk.segment_id), data-final="true" when a stream of it says it is final.
import { Room, RoomEvent, Track } from '/vendor/livekit-client.esm.mjs';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const video = $('avatar');
const audio = $('avatar-audio');
const status = (text) => {
  $('status').textContent = text;
};

$('room').value = params.get('room') ?? $('room').value;
$('identity').value = params.get('identity') ?? `user-${Math.random().toString(36).slice(2, 8)}`;
if (params.get('mic') === '0') $('mic').checked = false;

let room = null;
let showing = null;
let joinedAt = null;
let firstFrame = false;
let presented = [];

const TRANSCRIPTION_TOPIC = 'lk.transcription';
const AV_OFFSET_ATTRIBUTE = 'synctalk.av_offset_ms';

const figure = (id, value, text) => {
  $(id).dataset.value = String(value);
  $(id).textContent = text;
};

/** Counts the frames the <video> presents; the first one after joining gives the first-frame latency. */
function countFrames() {
  video.requestVideoFrameCallback((now) => {
    if (!firstFrame && joinedAt !== null) {
      firstFrame = true;
      figure('first-frame', Math.round(now - joinedAt), `${Math.round(now - joinedAt)} ms`);
    }
    presented.push(now);
    countFrames();
  });
}
setInterval(() => {
  const now = performance.now();
  presented = presented.filter((t) => t > now - 1000);
  if (showing !== null) figure('fps', presented.length, `${presented.length} fps`);
}, 500);

/** The A/V offset the avatar reports, from its attributes. */
function showAvOffset(participant) {
  const value = participant.attributes?.[AV_OFFSET_ATTRIBUTE];
  if (value === undefined || value === '') return;
  figure('av-offset', Number(value), `${Math.round(Number(value))} ms`);
}

/** One transcript entry per segment: the text of the latest stream of that segment (delta streams grow). */
async function onTranscription(reader, participantInfo) {
  const attributes = reader.info.attributes ?? {};
  const segment = attributes['lk.segment_id'] ?? reader.info.id;
  let item = [...$('transcript').children].find((li) => li.dataset.segment === segment);
  if (item === undefined) {
    item = document.createElement('li');
    item.dataset.segment = segment;
    item.innerHTML = '<span class="who"></span><span class="text"></span>';
    $('transcript').append(item);
  }
  const speaker = participantInfo.identity;
  const local = speaker === room?.localParticipant.identity;
  item.dataset.participant = speaker;
  item.querySelector('.who').textContent = local ? `${speaker} (you)` : speaker;
  item.dataset.final = attributes['lk.transcription_final'] === 'true' ? 'true' : 'false';
  let text = '';
  for await (const chunk of reader) {
    text += chunk;
    item.querySelector('.text').textContent = text;
    $('transcript').scrollTop = $('transcript').scrollHeight;
  }
  if (attributes['lk.transcription_final'] === 'true') item.dataset.final = 'true';
}

async function join() {
  $('connect').disabled = true;
  joinedAt = performance.now();
  firstFrame = false;
  const query = new URLSearchParams({ room: $('room').value, identity: $('identity').value });
  const reply = await fetch(`/token?${query}`);
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error ?? `token request failed (${reply.status})`);

  room = new Room({ adaptiveStream: false, dynacast: false });
  room.registerTextStreamHandler(TRANSCRIPTION_TOPIC, (reader, participantInfo) => {
    onTranscription(reader, participantInfo).catch((e) => console.warn('transcription stream failed', e));
  });
  room.on(RoomEvent.ParticipantAttributesChanged, (_changed, participant) => showAvOffset(participant));
  room.on(RoomEvent.TrackSubscribed, (track, _publication, participant) => {
    if (track.kind === Track.Kind.Video) {
      track.attach(video);
      video.dataset.participant = participant.identity;
      showing = participant.identity;
      showAvOffset(participant);
      status(`connected: showing ${showing}`);
    } else if (track.kind === Track.Kind.Audio) {
      track.attach(audio);
      audio.dataset.participant = participant.identity;
    }
  });
  room.on(RoomEvent.TrackUnsubscribed, (track, _publication, participant) => {
    track.detach();
    const element = track.kind === Track.Kind.Video ? video : audio;
    if (element.dataset.participant === participant.identity) delete element.dataset.participant;
    if (track.kind === Track.Kind.Video) showing = null;
  });
  room.on(RoomEvent.Disconnected, () => {
    showing = null;
    delete $('status').dataset.mic;
    status('disconnected');
    $('connect').disabled = false;
    $('leave').disabled = true;
  });

  await room.connect(body.url, body.token, { rtcConfig: { iceServers: [] } });
  if (showing === null) status(`connected to ${room.name}: waiting for the avatar`);
  $('leave').disabled = false;
  if ($('mic').checked) {
    try {
      await room.localParticipant.setMicrophoneEnabled(true);
      $('status').dataset.mic = 'published';
    } catch (e) {
      status(`connected to ${room.name}; microphone not available: ${e.message}`);
    }
  }
}

$('join').addEventListener('submit', (ev) => {
  ev.preventDefault();
  join().catch((e) => {
    status(`error: ${e.message}`);
    $('connect').disabled = false;
  });
});
$('leave').addEventListener('click', () => room?.disconnect());
countFrames();
if (params.get('autojoin') === '1') $('join').requestSubmit();
