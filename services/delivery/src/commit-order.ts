import type { Transaction } from 'kysely';
import type { DeliveryTables } from './db/schema.js';
import type { CommitFraming } from './enqueue-request.js';
import { CommitConflictError } from './errors.js';

/**
 * Takes the group's current epoch for this Commit (RFC 9750 §5.2.1: one Commit per group and epoch),
 * or throws CommitConflictError naming the epoch the group is at. A group the service has not seen
 * takes the epoch of its first Commit.
 *
 * Must run inside the Enqueue transaction that stores the Commit: the upsert locks the group's row (a
 * new group's primary-key entry) until that transaction ends, so concurrent Commits for the same epoch
 * wait, then find the epoch moved on and are refused; if the winner rolls back, the next one wins.
 */
export async function takeGroupEpoch(tx: Transaction<DeliveryTables>, commit: CommitFraming): Promise<void> {
  const groupId = Buffer.from(commit.groupId);
  const advanced = await tx
    .insertInto('group_epochs')
    .values({ group_id: groupId, epoch: commit.epoch + 1n })
    .onConflict((oc) =>
      oc
        .column('group_id')
        .doUpdateSet((eb) => ({ epoch: eb.ref('excluded.epoch'), updated_at: new Date() }))
        .where('group_epochs.epoch', '=', commit.epoch),
    )
    .returning('epoch')
    .executeTakeFirst();
  if (advanced) return;
  // A fresh statement sees the winner's commit (read committed): the epoch the client must catch up to.
  const current = await tx
    .selectFrom('group_epochs')
    .select('epoch')
    .where('group_id', '=', groupId)
    .executeTakeFirstOrThrow();
  throw new CommitConflictError(groupId.toString('hex'), commit.epoch, current.epoch);
}
