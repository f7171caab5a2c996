import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DockerfileError, finalStages, imageConfig, parseDockerfile } from './dockerfile.js';

const SAMPLE = `# syntax=docker/dockerfile:1
ARG BASE=node:20.1.0-bookworm-slim
FROM \${BASE} AS build
RUN echo building

FROM \${BASE} AS runtime
WORKDIR /app
ENV A=1 \\
    # a comment inside a continued instruction
    B="two words"
ENV LEGACY value with spaces
USER 10001:10001
CMD ["inherited"]

FROM runtime AS svc
COPY --from=build /out/svc/ /app/
ENV A=\${A}0
WORKDIR sub
EXPOSE 7000/udp 9100
ENTRYPOINT ["node", "bin.ts"]
`;

test('a final stage inherits ENV, WORKDIR and USER from the stages it builds on', () => {
  const file = parseDockerfile(SAMPLE);
  assert.deepEqual(
    file.stages.map((s) => s.name),
    ['build', 'runtime', 'svc'],
  );
  assert.deepEqual(finalStages(file), ['svc']);
  const config = imageConfig(file, 'svc');
  assert.equal(config.baseImage, 'node:20.1.0-bookworm-slim');
  assert.deepEqual(config.env, { A: '10', B: 'two words', LEGACY: 'value with spaces' });
  assert.equal(config.workdir, '/app/sub');
  assert.equal(config.user, '10001:10001');
  assert.deepEqual(config.exposed, ['7000/udp', '9100/tcp']);
  assert.deepEqual(config.entrypoint, ['node', 'bin.ts']);
  assert.deepEqual(config.cmd, [], 'ENTRYPOINT drops an inherited CMD');
  assert.deepEqual(config.copies, [{ from: 'build', sources: ['/out/svc/'], dest: '/app/' }]);
});

test('a shell-form ENTRYPOINT and a missing stage are refused', () => {
  const file = parseDockerfile('FROM node:20 AS a\nENTRYPOINT node bin.ts\n');
  assert.throws(() => imageConfig(file, 'a'), DockerfileError);
  assert.throws(() => imageConfig(file, 'b'), /no stage b/);
});
