// harness.js — helpers that web/browser_test.go calls (through chromedp) to
// exercise /statesync.js in a real browser. Everything the Go side reads back
// is plain JSON: recorded events, applied snapshots, error fields.

import { connect, StateSyncError } from "/statesync.js";

// es counts the EventSources the clients of this page open and close.
export const es = { created: 0, open: 0, urls: [] };

// CountingEventSource is an EventSource that keeps es up to date.
export class CountingEventSource extends EventSource {
  constructor(url) {
    super(url);
    this.counted = true;
    es.created++;
    es.open++;
    es.urls.push(String(url));
  }
  close() {
    if (this.counted) {
      this.counted = false;
      es.open--;
    }
    super.close();
  }
}

export const clients = {}; // name -> client
export const statuses = {}; // client name -> ["open", "reconnecting", …]

// client makes a client named name; getSnapshot calls are counted per topic
// (client.snapshotCalls), synchronously, as the follower makes them.
export function client(name, opts = {}) {
  const c = connect({ ...opts, EventSourceImpl: CountingEventSource });
  c.snapshotCalls = {};
  const get = c.getSnapshot.bind(c);
  c.getSnapshot = (topic, ...rest) => {
    c.snapshotCalls[topic] = (c.snapshotCalls[topic] ?? 0) + 1;
    return get(topic, ...rest);
  };
  statuses[name] = [];
  c.onStatus((s) => statuses[name].push(s));
  clients[name] = c;
  return c;
}

export const events = {}; // subscription name -> events received
export const unsubs = {}; // subscription name -> unsubscribe function

// subscribe subscribes a recording handler through the @statesync/core
// InvalidationSubscriber interface and reports what subscribe returned.
export async function subscribe(name, clientName, topic) {
  events[name] = [];
  const p = clients[clientName].subscriber(topic).subscribe((ev) => events[name].push(ev));
  const isPromise = p instanceof Promise;
  const unsub = await p;
  unsubs[name] = unsub;
  return { isPromise, unsubscribeType: typeof unsub };
}

export const applied = {}; // follower name -> snapshots applied, in order
export const followers = {}; // follower name -> handle
export const errors = []; // {name, phase, message} reported by followers

// follow follows topic with client.follow, recording every applied snapshot.
export async function follow(name, clientName, topic) {
  applied[name] = [];
  const h = await clients[clientName].follow(topic, (snap) => {
    applied[name].push({ revision: snap.revision, epoch: snap.epoch, data: snap.data });
  }, {
    onError: (err, phase) => errors.push({ name, phase, message: String(err?.message ?? err) }),
  });
  followers[name] = h;
  return h.revision();
}

// attempt runs fn and returns {value} or {error} with the fields of a
// StateSyncError, so that the Go side can check rejections.
export async function attempt(fn) {
  try {
    return { value: await fn() };
  } catch (e) {
    return {
      error: {
        isStateSyncError: e instanceof StateSyncError,
        name: e?.name,
        message: String(e?.message ?? e),
        status: e?.status,
        code: e?.code,
        conflict: e?.conflict,
        currentRevision: e?.currentRevision,
      },
    };
  }
}
