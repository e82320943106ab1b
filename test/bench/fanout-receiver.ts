/**
 * Child process of the fan-out benchmark: opens UDP sockets on 127.0.0.1 (one per receiver, both
 * of its consumers send there) and counts RTP packets per SSRC (received, highest extended
 * sequence number). Runs apart from the bench process so counting never competes with it for an
 * event loop. IPC: { cmd: 'open', count } → { ports }; { cmd: 'snapshot' } → { ssrcs: [ssrc,
 * received, highestExtSeq][] }; { cmd: 'exit' }.
 */
import dgram from 'node:dgram';

interface Stream {
  received: number;
  highest: number;
  cycles: number;
  last: number;
}

const streams = new Map<number, Stream>();
const sockets: dgram.Socket[] = [];

function onPacket(msg: Buffer): void {
  if (msg.length < 12) return;
  const pt = msg[1]!;
  if (pt >= 192 && pt <= 223) return; // RTCP (rtcp-mux, RFC 5761)
  const seq = msg.readUInt16BE(2);
  const ssrc = msg.readUInt32BE(8);
  let s = streams.get(ssrc);
  if (!s) {
    s = { received: 0, highest: seq, cycles: 0, last: seq };
    streams.set(ssrc, s);
  }
  s.received++;
  if (seq < s.last && s.last - seq > 0x8000)
    s.cycles += 0x10000; // wrapped
  else if (seq > s.last && seq - s.last > 0x8000) {
    // a late packet from before the wrap: counted, not a new highest
    return;
  }
  s.last = seq;
  const ext = s.cycles + seq;
  if (ext > s.highest) s.highest = ext;
}

async function open(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
    socket.on('message', onPacket);
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    sockets.push(socket);
    ports.push(socket.address().port);
  }
  return ports;
}

process.on('message', (m: { cmd: string; id: number; count?: number }) => {
  const reply = (data: unknown) => process.send?.({ id: m.id, ...(data as object) });
  if (m.cmd === 'open') void open(m.count ?? 0).then((ports) => reply({ ports }));
  else if (m.cmd === 'snapshot') reply({ ssrcs: [...streams].map(([ssrc, s]) => [ssrc, s.received, s.highest]) });
  else if (m.cmd === 'exit') {
    for (const s of sockets) s.close();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.({ id: 0, ready: true });
