// Types of statesync.js, the client of a statesync daemon (wire protocol
// v1). Checked by `tsc --strict` in CI (web/testdata/consumer.ts, run by
// web/package_test.go). Keep in step with statesync.js: every export and
// every option of connect, follow, provider and the writes is declared here.

/** isCanonicalRevision reports whether r is a canonical u64 decimal string. */
export function isCanonicalRevision(r: unknown): r is string;

/** compareRevisions returns -1, 0 or 1 for canonical revision strings. */
export function compareRevisions(a: string, b: string): -1 | 0 | 1;

/** The body of an error response: `{"error": {"code", "message", ...}}`. */
export interface ErrorBody {
  error?: {
    code?: string;
    message?: string;
    /** For a conflict: the topic's current revision. */
    revision?: string;
    /** For a refused topic of the event stream. */
    topic?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** StateSyncError is thrown for HTTP errors; conflicts have status 412. */
export class StateSyncError extends Error {
  constructor(status: number, code?: string, message?: string, body?: ErrorBody | null);
  readonly name: "StateSyncError";
  /** The HTTP status (403 or 400 for a topic the event stream refused). */
  status: number;
  /** The error's code, e.g. "conflict", "forbidden", "invalid_topic". */
  code: string | undefined;
  body: ErrorBody | null | undefined;
  /** For a conflict (412/409): the topic's current revision, if the server said. */
  currentRevision: string | undefined;
  /** The topic, on an error of a topic the event stream refused. */
  topic?: string;
  /** True for a conflict (status 412 or 409). */
  readonly conflict: boolean;
}

/** A frame of the event stream as an EventSource delivers it. */
export interface StreamMessage {
  readonly data: string;
}

/**
 * The part of an EventSource the client uses: the browser's, or one for
 * Node (e.g. EventSource of the "eventsource" npm package). The client
 * also sets its onopen and onerror.
 */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (event: StreamMessage) => void): void;
  close(): void;
}

/** An EventSource class: `new ES(url)` opens the event stream at url. */
export type EventSourceConstructor = new (url: string) => EventSourceLike;

/** Gives the data of a topic without data (never written, or deleted). */
export type EmptyData = (topic: string) => unknown;

/** Options of connect, all optional. */
export interface ConnectOptions {
  /** The daemon (default: this page's origin; required outside a browser). */
  url?: string;
  /** A bearer token (sent as access_token on the event stream). */
  token?: string;
  /**
   * Ask the event stream to carry snapshots of at most this many bytes, so
   * that they need no GET (default 0: none).
   */
  inline?: number;
  /**
   * The data of a topic that has none, instead of null; called once per
   * snapshot. Pass `() => ({})` for the @statesync/* adapters.
   */
  emptyData?: EmptyData | null;
  /**
   * The EventSource class (default: globalThis.EventSource). Node 20 has
   * none: pass one; connect throws a TypeError at once without.
   */
  EventSourceImpl?: EventSourceConstructor;
}

/** A topic's state. data is null for a topic without data (see emptyData). */
export interface Snapshot<T = unknown> {
  revision: string;
  epoch?: string;
  data: T | null;
}

/** What the event stream says of a change of a topic. */
export interface InvalidationEvent {
  topic: string;
  revision: string;
  epoch?: string;
  sourceId?: string;
  timestampMs?: number;
}

/** The InvalidationSubscriber interface of @statesync/core. */
export interface InvalidationSubscriber {
  /**
   * Resolves to the unsubscribe function once the event stream has taken
   * the topic in; rejects with a StateSyncError (403 or 400) if the server
   * refuses it.
   */
  subscribe(handler: (event: InvalidationEvent) => void): Promise<() => void>;
}

/** The SnapshotProvider interface of @statesync/core. */
export interface SnapshotProvider<T = unknown> {
  getSnapshot(): Promise<Snapshot<T>>;
}

/** Options of getSnapshot and provider. */
export interface SnapshotOptions {
  /** As connect's emptyData, for these snapshots. */
  emptyData?: EmptyData | null;
}

/** Options of put, patch and delete. */
export interface WriteOptions {
  /** Write only if the topic is at this revision (else a 412 StateSyncError). */
  ifRevision?: string | null;
  /** Sent as X-Source-Id and echoed in the invalidation of this write. */
  sourceId?: string;
}

/** What a write returns: the topic's new revision. */
export interface WriteResult {
  revision: string;
  epoch?: string;
  [key: string]: unknown;
}

/** One topic of client.topics(). */
export interface TopicInfo {
  topic: string;
  revision: string;
  epoch?: string;
  [key: string]: unknown;
}

/** The phase a follower's error happened in. */
export type FollowErrorPhase = "subscribe" | "getSnapshot" | "protocol" | "apply" | "invalidation";

/** Options of follow. */
export interface FollowOptions {
  /** Told of every error (default: the console). */
  onError?: (err: unknown, phase: FollowErrorPhase) => void;
  /** Decides whether an invalidation is fetched (default: every newer one). */
  shouldRefresh?: (event: InvalidationEvent) => boolean;
}

/** What follow resolves to. */
export interface FollowHandle<T = unknown> {
  stop(): void;
  /** Resolves after a fetch that started after the call has finished. */
  refresh(): Promise<void>;
  /** The revision applied last ("0" before any). */
  revision(): string;
  epoch(): string | undefined;
  /** Applies snap if it is newer (e.g. what you just wrote); true if applied. */
  offer(snap: Snapshot<T>): boolean;
}

/** Options of watchPrefix. */
export interface WatchPrefixOptions {
  /**
   * Told when the server ends the watch's stream (new topics took the
   * prefix over its cap of topics per stream) or refuses a reconnection
   * (default: the console). The watch goes on retrying.
   */
  onError?: (err: StateSyncError) => void;
}

/** The event stream's status: see Client.onStatus. */
export type StreamStatus = "open" | "reconnecting" | "closed";

/** A client of one daemon, made by connect. */
export interface Client {
  /** An InvalidationSubscriber of @statesync/core for topic. */
  subscriber(topic: string): InvalidationSubscriber;
  /** A SnapshotProvider of @statesync/core for topic. */
  provider<T = unknown>(topic: string, options?: SnapshotOptions): SnapshotProvider<T>;
  /** The topic's snapshot: carried by the stream if still the latest, else a GET. */
  getSnapshot<T = unknown>(topic: string, options?: SnapshotOptions): Promise<Snapshot<T>>;
  /** Replaces topic's data. */
  put(topic: string, data: unknown, options?: WriteOptions): Promise<WriteResult>;
  /** Applies a JSON merge patch (RFC 7396) to topic's data. */
  patch(topic: string, patch: unknown, options?: WriteOptions): Promise<WriteResult>;
  /** Sets topic's data to null at a new revision. */
  delete(topic: string, options?: WriteOptions): Promise<WriteResult>;
  /** The topics this client may read. */
  topics(): Promise<TopicInfo[]>;
  /**
   * Calls apply with every newer snapshot of topic; resolves after the
   * first is applied.
   */
  follow<T = unknown>(topic: string, apply: (snapshot: Snapshot<T>) => void, options?: FollowOptions): Promise<FollowHandle<T>>;
  /**
   * Calls handler with the current revision of every topic under prefix
   * that the token may read, then with every later write to one, topics
   * created later included; snapshot is given when the stream carried the
   * data (connect's inline). "" watches every topic the token may read.
   * Resolves to the function that ends the watch once the server accepted
   * the stream; rejects with a StateSyncError if it refuses it.
   */
  watchPrefix<T = unknown>(prefix: string, handler: (event: InvalidationEvent, snapshot?: Snapshot<T>) => void, options?: WatchPrefixOptions): Promise<() => void>;
  /** Calls fn with the event stream's status; returns an unsubscribe function. */
  onStatus(fn: (status: StreamStatus) => void): () => void;
  /** Ends the event streams (watchPrefix's too); followers stop receiving invalidations. */
  close(): void;
}

/**
 * connect returns a client for the daemon at url. It throws a TypeError
 * if there is no EventSource class (pass EventSourceImpl in Node 20), or
 * if emptyData is not a function.
 */
export function connect(options?: ConnectOptions): Client;
