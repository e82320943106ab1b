/**
 * Child process of the fan-out benchmark: the synthetic RTP sources (rtp.ts), one per system, in
 * a process of their own so their 33 ms / 20 ms pacing never waits on the bench's event loop.
 * IPC: { cmd: 'bind', name, videoSsrc } → { port }; { cmd: 'target', name, port? } (no port:
 * pause); { cmd: 'sent' } → { sent: { [name]: counters } }; { cmd: 'exit' }.
 */
import { RtpSource } from './rtp.js';

const sources = new Map<string, RtpSource>();

process.on('message', (m: { cmd: string; id: number; name?: string; videoSsrc?: number; port?: number }) => {
  const reply = (data: object) => process.send?.({ id: m.id, ...data });
  if (m.cmd === 'bind') {
    const s = new RtpSource({ videoSsrc: m.videoSsrc!, audioSsrc: m.videoSsrc! + 1 });
    sources.set(m.name!, s);
    void s.bind().then((port) => {
      s.start();
      reply({ port });
    });
  } else if (m.cmd === 'target') {
    sources.get(m.name!)?.target(m.port);
    reply({});
  } else if (m.cmd === 'sent') {
    reply({ sent: Object.fromEntries([...sources].map(([name, s]) => [name, s.sent])) });
  } else if (m.cmd === 'exit') {
    for (const s of sources.values()) s.stop();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.({ id: 0, ready: true });
