// The ceiling of bench/serve.ts: a process with nothing but Node and fastify, answering GET /healthz and every
// POST /rpc with the bytes of BENCH_ANSWER_FILE (a group.describe answer Capstan gave). Listens on
// 127.0.0.1:BENCH_PORT. Imports nothing of Capstan's, so its memory is the floor of any fastify service.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const file = process.env.BENCH_ANSWER_FILE;
const answer = file ? readFileSync(file) : Buffer.from('{"jsonrpc":"2.0","id":1,"result":{}}');
const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
app.get('/healthz', async () => ({ status: 'ok' }));
app.post('/rpc', async (_req, reply) => reply.type('application/json; charset=utf-8').send(answer));
await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) });
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
