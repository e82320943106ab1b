/**
 * Loopback check: `loopback.html` (no parameters).
 *
 * Creates a demo room, joins it as host and goes on stage with the camera, then joins the same
 * room a second time as a viewer in this page, which receives the camera back through the SFU.
 * Shows both videos and, every second, the received resolution and frames decoded read from
 * `getStats()`. `document.body.dataset.state`: starting → publishing → receiving → live (remote
 * frames decode) or failed.
 *
 * The thin client does not hand out its RTCPeerConnections, so this diagnostic page records the
 * ones created in it (a subclass of RTCPeerConnection installed before joining) and reads the
 * stats of the receiver that carries the remote track.
 */
import { joinMeeting, type Meeting } from '../index.js';
import { byId, createDemoRoom, demoToken, errorText, notice } from './ui.js';
import { AudioMeter } from './media.js';

const pcs: RTCPeerConnection[] = [];
{
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config?: RTCConfiguration) {
      super(config);
      pcs.push(this);
    }
  } as typeof RTCPeerConnection;
}

const setState = (state: string) => (document.body.dataset.state = state);
const step = (text: string) => (byId('step').textContent = text);
const liveDot = byId('live-dot');
const localVideo = byId<HTMLVideoElement>('local-video');
const remoteVideo = byId<HTMLVideoElement>('remote-video');
const meetings: Meeting[] = [];
let remoteTrack: MediaStreamTrack | undefined;
let remoteAudio: MediaStreamTrack | undefined;

addEventListener('pagehide', () => {
  for (const m of meetings) void m.leave();
});

async function run(): Promise<void> {
  step('Creating a test room…');
  const room = await createDemoRoom('REQUEST');
  byId('room-id').textContent = room.roomId;

  step('Joining as host…');
  const hostToken = await demoToken({
    roomId: room.roomId,
    name: 'Loopback sender',
    role: 'host',
    hostKey: room.hostKey,
  });
  const host = await joinMeeting({ url: location.origin, token: hostToken.token, roomId: room.roomId });
  meetings.push(host);

  step('Going on stage with your camera…');
  setState('publishing');
  await host.stage.join();
  const { video, audio } = host.localTracks;
  if (!video) throw new Error('no camera track was published');
  localVideo.srcObject = new MediaStream([video]);
  if (audio) AudioMeter.attach(audio, byId('local-meter'), byId('local-tile'));
  const settings = video.getSettings();
  byId('local-res').textContent = `${settings.width ?? '?'}×${settings.height ?? '?'} sent`;

  step('Receiving through the SFU…');
  setState('receiving');
  const viewerToken = await demoToken({ roomId: room.roomId, name: 'Loopback receiver', role: 'viewer' });
  const viewer = await joinMeeting({ url: location.origin, token: viewerToken.token, roomId: room.roomId });
  meetings.push(viewer);
  const attach = (kind: string, track: MediaStreamTrack) => {
    if (kind === 'video') {
      remoteTrack = track;
      remoteVideo.srcObject = new MediaStream([track]);
    } else {
      // Played muted (audible, it would echo the microphone): Chromium feeds WebAudio from a
      // remote track only while a media element plays it.
      remoteAudio = track;
      const sink = new Audio();
      sink.muted = true;
      sink.srcObject = new MediaStream([track]);
      void sink.play().catch(() => undefined);
      AudioMeter.attach(track, byId('remote-meter'), byId('remote-tile'));
    }
  };
  viewer.on('trackAdded', ({ kind, track }) => attach(kind, track));
  // Producers already on stage were consumed during joinMeeting.
  for (const p of viewer.participants.values()) {
    if (p.tracks.video) attach('video', p.tracks.video);
    if (p.tracks.audio) attach('audio', p.tracks.audio);
  }
  viewer.on('trackRemoved', ({ kind }) => {
    if (kind === 'video') remoteTrack = undefined;
    else remoteAudio = undefined;
  });
  for (const m of meetings) {
    m.on('disconnected', ({ reason }) => {
      if (reason !== 'left') fail(new Error(`disconnected from the server (${reason})`));
    });
  }
  step('Waiting for decoded frames…');
  setInterval(() => void updateStats(), 1000);
  void updateStats();
}

interface Last {
  at: number;
  frames: number;
  bytes: number;
}
let last: Last | undefined;

async function receiverStats(track: MediaStreamTrack | undefined): Promise<Record<string, unknown>[]> {
  if (!track) return [];
  for (const pc of pcs) {
    if (pc.connectionState === 'closed') continue;
    const receiver = pc.getReceivers().find((r) => r.track === track);
    if (!receiver) continue;
    const out: Record<string, unknown>[] = [];
    (await receiver.getStats()).forEach((s: Record<string, unknown>) => out.push(s));
    return out;
  }
  return [];
}

async function updateStats(): Promise<void> {
  const [videoStats, audioStats] = await Promise.all([receiverStats(remoteTrack), receiverStats(remoteAudio)]);
  const inbound = videoStats.find((s) => s.type === 'inbound-rtp');
  const audioIn = audioStats.find((s) => s.type === 'inbound-rtp');
  const pair = videoStats.find((s) => s.type === 'candidate-pair' && s.nominated);
  if (inbound) {
    const frames = Number(inbound.framesDecoded ?? 0);
    const bytes = Number(inbound.bytesReceived ?? 0);
    const w = Number(inbound.frameWidth ?? 0);
    const hgt = Number(inbound.frameHeight ?? 0);
    const now = performance.now();
    byId('stat-res').textContent = w ? `${w}×${hgt}` : '—';
    byId('remote-res').textContent = w ? `${w}×${hgt} received` : '—';
    byId('stat-frames').textContent = String(frames);
    byId('stat-lost').textContent = String(Number(inbound.packetsLost ?? 0));
    if (last) {
      const secs = (now - last.at) / 1000;
      byId('stat-fps').textContent = `${Math.round((frames - last.frames) / secs)} fps`;
      byId('stat-kbps').textContent = `${Math.round(((bytes - last.bytes) * 8) / secs / 1000)} kbps`;
    }
    last = { at: now, frames, bytes };
    const codec = videoStats.find((s) => s.type === 'codec' && s.id === inbound.codecId);
    if (codec) byId('stat-codec').textContent = String(codec.mimeType ?? '—').replace(/^video\//, '');
    if (frames > 0 && document.body.dataset.state !== 'live') {
      setState('live');
      step('Live: media flows through the SFU');
      liveDot.classList.remove('idle');
      liveDot.textContent = 'Live';
    }
  }
  if (audioIn) byId('stat-audio').textContent = `${Math.round(Number(audioIn.bytesReceived ?? 0) / 1024)} kB`;
  if (pair && typeof pair.currentRoundTripTime === 'number') {
    byId('stat-rtt').textContent = `${Math.round(pair.currentRoundTripTime * 1000)} ms`;
  }
}

function fail(err: unknown): void {
  setState('failed');
  step('Failed');
  liveDot.textContent = 'Failed';
  notice(byId('notices'), 'error', `The loopback check failed: ${errorText(err)}`, 'failed');
}

run().catch(fail);
