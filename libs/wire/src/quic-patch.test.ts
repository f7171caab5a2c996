// The project's patch of @matrixai/quic (patches/, applied by `postinstall: patch-package`) is in the
// installed library: without it the QUIC edge runs at a fifth of its speed (docs/performance.md).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

test('the installed @matrixai/quic carries the qpq patch', async () => {
  const dist = dirname(fileURLToPath(import.meta.resolve('@matrixai/quic')));
  const connection = await readFile(join(dist, 'QUICConnection.js'), 'utf8');
  assert.match(connection, /recvSerial\(f\)/, 'QUICConnection: per-packet lock replaced');
  assert.match(connection, /sendScheduled = true/, 'QUICConnection: one send per event-loop turn');
  assert.match(connection, /this\.scheduleSend\(true\);/, 'QUICConnection: one answer per turn to what was received');
  assert.match(connection, /socket\.socket\.send\(detail\.msg/, 'QUICConnection: datagrams straight to the socket');
  assert.match(connection, /ackTimer = setTimeout\(this\.flushAck/, 'QUICConnection: delayed ACK');
  assert.match(
    connection,
    /this\.unanswered >= this\.ackAtOnceCount/,
    'QUICConnection: a burst of small datagrams is answered at once',
  );
  const stream = await readFile(join(dist, 'QUICStream.js'), 'utf8');
  assert.match(stream, /this\.connection\.scheduleAck\(\)/, 'QUICStream: a small read answers with the delayed ACK');
  const config = await readFile(join(dist, 'config.js'), 'utf8');
  assert.match(config, /setMaxAckDelay\(50\)/, 'config: max_ack_delay covers the delayed ACK');
  const socket = await readFile(join(dist, 'QUICSocket.js'), 'utf8');
  assert.match(socket, /recvBufferSize: 2 \* 1024 \* 1024/, 'QUICSocket: larger receive buffer');
  assert.match(socket, /lookup: \(address, family, callback\)/, 'QUICSocket: no DNS lookup per datagram');
});
