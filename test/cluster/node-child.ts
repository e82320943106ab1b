/**
 * One Stagegate node of a test cluster, in its own process (so a test can SIGKILL it). argv[2]:
 * the config as JSON, argv[3] the web root (optional). IPC: ready → { url, nodeId }; { cmd: 'exit' } closes it.
 */
import { createStagegate } from '../../server/index.js';

const webRoot = process.argv[3] || undefined;
const sg = await createStagegate({ useEnv: false, config: JSON.parse(process.argv[2]!) as object, webRoot });
const { url } = await sg.listen();
const close = () => void sg.close().finally(() => process.exit(0));
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'exit') close();
});
process.on('disconnect', close);
process.send?.({ id: 0, ready: true, url, nodeId: sg.cluster?.nodeId });
