// A stand-in for a qpq service, to test the TestNetwork orchestrator on its own: it honours the same
// contract (QPQ_* environment, GET /readyz on QPQ_METRICS_LISTEN, exit on SIGTERM) and proves that
// what it was given works: its ports bind, Postgres answers, NATS accepts it, the TLS files exist.
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { connect } from 'nats';

const pkg = process.argv[2];
const gateway = pkg === 'gateway';
const required = [
  'QPQ_LISTEN',
  'QPQ_METRICS_LISTEN',
  'QPQ_NATS_URL',
  'QPQ_TLS_CA',
  'QPQ_TLS_CERT',
  'QPQ_TLS_KEY',
  'QPQ_DOMAIN',
];
if (gateway)
  required.push(
    'QPQ_AUTH_ADDR',
    'QPQ_KEYPACKAGE_ADDR',
    'QPQ_DELIVERY_ADDR',
    'QPQ_KTLOG_ADDR',
    'QPQ_EDGE_TLS_CERT',
    'QPQ_EDGE_TLS_KEY',
  );
else required.push('QPQ_DATABASE_URL');
const missing = required.filter((k) => !process.env[k]);
if (missing.length) {
  console.error(`fake ${pkg}: missing ${missing.join(', ')}`);
  process.exit(2);
}
for (const k of [
  'QPQ_TLS_CA',
  'QPQ_TLS_CERT',
  'QPQ_TLS_KEY',
  ...(gateway ? ['QPQ_EDGE_TLS_CERT', 'QPQ_EDGE_TLS_KEY'] : []),
]) {
  readFileSync(process.env[k]);
}
const hostPort = (s) => {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
};

const listen = hostPort(process.env.QPQ_LISTEN);
let listener;
if (gateway) {
  listener = createSocket('udp4');
  await new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.bind(listen.port, listen.host, resolve);
  });
} else {
  listener = createTcpServer();
  await new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(listen.port, listen.host, resolve);
  });
  const client = new pg.Client({ connectionString: process.env.QPQ_DATABASE_URL });
  await client.connect();
  await client.query(`create schema if not exists ${pkg}`);
  await client.end();
}
const nc = await connect({ servers: process.env.QPQ_NATS_URL });

const metrics = hostPort(process.env.QPQ_METRICS_LISTEN);
const http = createServer((req, res) => {
  if (req.url === '/readyz') res.writeHead(200).end('ready\n');
  else if (req.url === '/env') {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('QPQ_')));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(env));
  } else if (req.url === '/crash') {
    res.writeHead(200).end('bye\n', () => process.exit(3));
  } else res.writeHead(404).end();
});
await new Promise((resolve) => http.listen(metrics.port, metrics.host, resolve));
console.log(`fake ${pkg}: ready on ${process.env.QPQ_LISTEN}`);

process.on('SIGTERM', async () => {
  console.log(`fake ${pkg}: SIGTERM, draining`);
  await nc.close();
  http.close();
  listener.close();
  process.exit(0);
});
