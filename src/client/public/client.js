// The test client: joins a room with a token from /token, shows the avatar's video, plays its audio and
// publishes the microphone when the browser allows it. No ICE servers are configured (rtcConfig
// iceServers: []): the page talks only to the LiveKit server's own candidates.
// Query parameters: room, identity, mic=0 (do not publish the microphone), autojoin=1 (join on load).
// State for tests and debugging, as data-* attributes: data-participant on #avatar and #avatar-audio (whose
// track each element plays, removed when it goes), data-mic on #status ('published' once the microphone is).
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

async function join() {
  $('connect').disabled = true;
  const query = new URLSearchParams({ room: $('room').value, identity: $('identity').value });
  const reply = await fetch(`/token?${query}`);
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error ?? `token request failed (${reply.status})`);

  room = new Room({ adaptiveStream: false, dynacast: false });
  room.on(RoomEvent.TrackSubscribed, (track, _publication, participant) => {
    if (track.kind === Track.Kind.Video) {
      track.attach(video);
      video.dataset.participant = participant.identity;
      showing = participant.identity;
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
if (params.get('autojoin') === '1') $('join').requestSubmit();
