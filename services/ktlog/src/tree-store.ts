// The Merkle tree kept in Postgres: leaf hashes in `entries`, every completed perfect subtree in
// `nodes`. Any node of any tree size up to the newest is then the hash of at most log2(n) stored
// perfect subtrees, so a proof costs O(log n) row reads (in two queries), never a rebuild.
import { hashFromPerfectSubtrees, perfectSubtrees, type NodeRange } from '@qpq/merkle';
import { sql, type Kysely } from 'kysely';
import type { KtlogTables } from './db/schema.js';

/** Where a perfect subtree is stored: level 0 is a leaf (entries.index = position). */
interface StoredNode {
  level: number;
  position: number;
}

/** log2 of a power of two, without bitwise operators (they truncate to 32 bits). */
export function levelOf(width: number): number {
  let level = 0;
  for (let w = 1; w < width; w *= 2) level++;
  return level;
}

function storedNode(range: NodeRange): StoredNode {
  const width = range.end - range.start;
  return { level: levelOf(width), position: range.start / width };
}

const nodeKey = (n: StoredNode) => `${n.level}/${n.position}`;

/**
 * The hashes of `ranges` (each a node of a tree no larger than what is stored: perfect, or a
 * rightmost node made of perfect ones), in order. Reads each stored hash it needs once.
 */
export async function readNodeHashes(db: Kysely<KtlogTables>, ranges: readonly NodeRange[]): Promise<Uint8Array[]> {
  const parts = ranges.map((r) => perfectSubtrees(r.start, r.end).map(storedNode));
  const wanted = new Map<string, StoredNode>();
  for (const part of parts) for (const n of part) wanted.set(nodeKey(n), n);
  const leaves = [...wanted.values()].filter((n) => n.level === 0).map((n) => String(n.position));
  const inner = [...wanted.values()].filter((n) => n.level > 0);
  const found = new Map<string, Uint8Array>();
  if (leaves.length > 0) {
    const rows = await sql<{ index: bigint; leaf_hash: Buffer }>`
      select index, leaf_hash from entries where index = any(${leaves}::bigint[])`.execute(db);
    for (const row of rows.rows) found.set(`0/${row.index}`, new Uint8Array(row.leaf_hash));
  }
  if (inner.length > 0) {
    const levels = inner.map((n) => n.level);
    const positions = inner.map((n) => String(n.position));
    const rows = await sql<{ level: number; position: bigint; hash: Buffer }>`
      select n.level, n.position, n.hash from nodes n
      join unnest(${levels}::smallint[], ${positions}::bigint[]) as w(level, position)
        on n.level = w.level and n.position = w.position`.execute(db);
    for (const row of rows.rows) found.set(`${row.level}/${row.position}`, new Uint8Array(row.hash));
  }
  return parts.map((part) =>
    hashFromPerfectSubtrees(
      part.map((n) => {
        const hash = found.get(nodeKey(n));
        // Only a bug (a size past what was appended, or a lost node row) can get here.
        if (!hash) throw new Error(`stored Merkle node ${nodeKey(n)} is missing`);
        return hash;
      }),
    ),
  );
}

/** The root of the tree of the first `size` entries. */
export async function rootHash(db: Kysely<KtlogTables>, size: number): Promise<Uint8Array> {
  const [root] = await readNodeHashes(db, [{ start: 0, end: size }]);
  return root as Uint8Array;
}

/** A node completed by an append, to be stored. */
export interface NewNode {
  level: number;
  position: number;
  hash: Uint8Array;
}

/**
 * Appends leaf hashes to a tree of `size` leaves whose perfect subtrees (left to right, as
 * perfectSubtrees(0, size)) hash to `frontier`: returns the perfect subtrees of level ≥ 1 that the new
 * leaves complete and the new tree's root. Pure, so that it is tested against the reference tree.
 */
export function appendToFrontier(
  size: number,
  frontier: readonly Uint8Array[],
  leafHashes: readonly Uint8Array[],
  nodeHash: (left: Uint8Array, right: Uint8Array) => Uint8Array,
): { nodes: NewNode[]; root: Uint8Array; frontier: Uint8Array[] } {
  const ranges = perfectSubtrees(0, size);
  const stack = ranges.map((r, i) => ({ start: r.start, width: r.end - r.start, hash: frontier[i] as Uint8Array }));
  const nodes: NewNode[] = [];
  leafHashes.forEach((hash, i) => {
    stack.push({ start: size + i, width: 1, hash });
    // Two neighbours of one width make the perfect subtree of twice that width: exactly the nodes
    // this leaf completes.
    while (stack.length >= 2 && stack.at(-1)?.width === stack.at(-2)?.width) {
      const right = stack.pop()!;
      const left = stack.pop()!;
      const merged = { start: left.start, width: left.width * 2, hash: nodeHash(left.hash, right.hash) };
      nodes.push({ level: levelOf(merged.width), position: merged.start / merged.width, hash: merged.hash });
      stack.push(merged);
    }
  });
  const hashes = stack.map((s) => s.hash);
  return { nodes, root: hashFromPerfectSubtrees(hashes), frontier: hashes };
}
