// Child process for store.test.ts: increments the mailbox cursor N times in a shared data dir.
import { LocalStore } from './store.js';

const [dir, count] = process.argv.slice(2);
const store = await LocalStore.open(dir!, { env: {} });
for (let i = 0; i < Number(count); i++) {
  await store.update((doc) => {
    doc.cursor.processedSeq += 1;
  });
}
