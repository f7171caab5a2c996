// One client device of the end-to-end scenarios: its own QUIC connection to the gateway, logged in
// and attached by hand (no SDK, no MLS), that sends ready-made envelopes through DeliveryService.Enqueue
// and receives pushes, acknowledging what it got the way a client does (cumulatively, batched).
import { DeliveryServiceService as Delivery, SessionServiceService, type Push } from '@qpq/proto';
import { callGateway, gatewayCaller, LIGHT_KEY_STRETCHING, newDevice, opaqueLogin, opaqueRegister } from '@qpq/testnet';
import { GatewayConnection, RpcError, StatusCode } from '@qpq/wire';
import { randomUUID } from 'node:crypto';
import { payloadId, type DeliveryLedger } from './e2e-ledger.js';

const CONNECT_TIMEOUT_MS = 10_000;
/** An Enqueue not answered in this long counts as failed (the gateway's own backend deadline is 5 s). */
const ENQUEUE_TIMEOUT_MS = 15_000;
/**
 * Enqueues one device keeps unanswered at once; more wait here (their latency still counts from when
 * they were due). Below the gateway's QPQ_MAX_REQUESTS_IN_FLIGHT (64), acks included.
 */
const MAX_IN_FLIGHT = 48;
/** How often a device acknowledges what it got: one cumulative Ack per interval at most, as clients batch them. */
export const ACK_INTERVAL_MS = 200;
const FETCH_LIMIT = 500;

/** Who the bench devices log in as: `e2e<account>`, every account with the same throwaway password. */
const PASSWORD = 'bench password, not a secret';

interface Queued {
  request: Uint8Array;
  resolve(ok: boolean): void;
}

export class BenchDevice {
  /** The ledgers pushes are counted in, by phase (the phase is in each payload). */
  private ledgers: readonly DeliveryLedger[] = [];
  /**
   * Every seq up to this one was pushed (a fresh device's seqs start at 1); those above it that were,
   * in `ahead`. Only the contiguous run is acknowledged, as a client does: a seq whose push went
   * missing stays in the mailbox, where the Fetch after the run finds it rather than calling it lost.
   */
  private contiguousSeq = 0n;
  private readonly ahead = new Set<bigint>();
  private ackedSeq = 0n;
  private acking = false;
  private ackTimer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private readonly queue: Queued[] = [];
  /** Pushes that were not bench envelopes (device notices and the like): only counted. */
  otherPushes = 0;
  ackFailures = 0;
  /** Enqueues that failed, by gRPC status name (e.g. DEADLINE_EXCEEDED). */
  readonly sendErrors = new Map<string, number>();

  private constructor(
    readonly conn: GatewayConnection,
    readonly deviceId: string,
    /** The session this device is attached with (other connections may attach with it too). */
    readonly sessionToken: string,
  ) {
    conn.onPush((push) => this.onPush(push));
  }

  /**
   * Connects to the gateway at `address` ("host:port"), registers account `e2e<account>` when
   * `register`, logs in as a new device and attaches.
   */
  static async create(address: string, ca: string, account: number, register: boolean): Promise<BenchDevice> {
    const colon = address.lastIndexOf(':');
    const conn = await GatewayConnection.connect({
      host: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      ca,
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
    try {
      const call = gatewayCaller(conn);
      const username = `e2e${account}`;
      // OPAQUE's key stretching runs on the client only: the light one leaves the server's work as it
      // is and keeps logging in a hundred devices in this one process from being the run's longest step.
      if (register) await opaqueRegister(call, username, PASSWORD, LIGHT_KEY_STRETCHING);
      const device = newDevice(`bench-${randomUUID().slice(0, 8)}`);
      const login = await opaqueLogin(call, username, PASSWORD, device, LIGHT_KEY_STRETCHING);
      await callGateway(conn, SessionServiceService.attach, { sessionToken: login.sessionToken });
      return new BenchDevice(conn, login.deviceId, login.sessionToken);
    } catch (err) {
      await conn.close();
      throw err;
    }
  }

  /** Starts counting bench pushes into `ledgers` and acknowledging them. */
  receiveInto(ledgers: readonly DeliveryLedger[]): void {
    this.ledgers = ledgers;
    this.ackTimer ??= setInterval(() => this.ackNow(), ACK_INTERVAL_MS);
  }

  /**
   * Enqueues `payload` for `recipients` and resolves with whether the server accepted it (never
   * rejects: a refusal or a timeout is a failed message). Waits for a slot beyond MAX_IN_FLIGHT.
   */
  enqueue(recipients: readonly string[], payload: Uint8Array, groupId?: Uint8Array): Promise<boolean> {
    const request = Delivery.enqueue.requestSerialize({
      messageId: randomUUID(),
      recipientDeviceIds: [...recipients],
      payload,
      groupId: groupId ?? new Uint8Array(0),
      ttlSeconds: 0,
      welcome: undefined,
    });
    return new Promise<boolean>((resolve) => {
      this.queue.push({ request: new Uint8Array(request), resolve });
      this.pump();
    });
  }

  /** Enqueues waiting for a slot, plus those unanswered. */
  get backlog(): number {
    return this.inFlight + this.queue.length;
  }

  /** Fetches everything still in the mailbox (pushed but not acknowledged, or never pushed) into the ledgers. */
  async fetchAll(): Promise<void> {
    let after = 0n;
    for (;;) {
      const answer = await callGateway(this.conn, Delivery.fetch, { afterSeq: after, limit: FETCH_LIMIT });
      for (const env of answer.envelopes) {
        const id = payloadId(env.payload);
        if (id) this.ledgers[id.phase]?.fetched(id.index, this.deviceId);
        if (env.seq > after) after = env.seq;
      }
      if (!answer.hasMore || answer.envelopes.length === 0) return;
    }
  }

  /** Stops acknowledging and closes the connection. */
  async close(): Promise<void> {
    clearInterval(this.ackTimer);
    await this.conn.close();
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.inFlight++;
      this.conn.request(Delivery.enqueue.path, next.request, ENQUEUE_TIMEOUT_MS).then(
        () => this.settled(next, true),
        (err: unknown) => {
          const code = err instanceof RpcError ? statusName(err.code) : 'CLIENT';
          this.sendErrors.set(code, (this.sendErrors.get(code) ?? 0) + 1);
          this.settled(next, false);
        },
      );
    }
  }

  private settled(q: Queued, ok: boolean): void {
    this.inFlight--;
    q.resolve(ok);
    this.pump();
  }

  private onPush(push: Push): void {
    const at = performance.now();
    if (push.kind?.$case !== 'envelope') {
      this.otherPushes++;
      return;
    }
    const env = push.kind.value;
    this.sawSeq(env.seq);
    const id = payloadId(env.payload);
    if (!id) {
      this.otherPushes++;
      return;
    }
    const ledger = this.ledgers[id.phase];
    if (ledger) ledger.pushed(id.index, this.deviceId, at);
    else this.otherPushes++;
  }

  private sawSeq(seq: bigint): void {
    if (seq <= this.contiguousSeq) return;
    this.ahead.add(seq);
    while (this.ahead.delete(this.contiguousSeq + 1n)) this.contiguousSeq++;
  }

  /** One cumulative Ack up to the last seq of the contiguous run pushed, unless one is still on its way. */
  private ackNow(): void {
    if (this.acking || this.contiguousSeq <= this.ackedSeq || this.conn.isClosed) return;
    const upTo = this.contiguousSeq;
    this.acking = true;
    callGateway(this.conn, Delivery.ack, { upToSeq: upTo }).then(
      () => {
        this.ackedSeq = upTo;
        this.acking = false;
      },
      () => {
        this.ackFailures++;
        this.acking = false;
      },
    );
  }
}

const statusName = (code: number) => Object.entries(StatusCode).find(([, v]) => v === code)?.[0] ?? String(code);
