// adapter.js — a stand-in, written for these tests, for the contract that
// the @statesync/core engine and its framework adapters rely on (those
// packages are not on the npm registry, so the tests cannot load them):
//
//   - start: await subscriber.subscribe(onInvalidation), then refresh;
//   - refresh: provider.getSnapshot(); apply it only if nothing was applied
//     yet or its revision is higher than the applied one (epochs are not
//     looked at); at most one getSnapshot in flight, one more queued;
//   - an invalidation whose revision is not above the applied one is
//     dropped;
//   - the applier is strict, as the adapters are by default: it throws
//     unless the data is a plain object, and otherwise replaces the store's
//     state with it.
//
// Errors are recorded per sync as {phase, message}; start rejects with the
// error of its first refresh.

import { isCanonicalRevision, compareRevisions } from "/statesync.js";
import { clients } from "./harness.js";

// isPlainObject: an object that is neither null, nor an array, nor an
// instance of a class other than Object.
function isPlainObject(v) {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// strictApplier returns an applier that replaces store.state with the
// snapshot's data, refusing anything but a plain object.
export function strictApplier(store) {
  return {
    apply(snap) {
      if (!isPlainObject(snap.data)) {
        throw new TypeError(`strict applier: the data of revision ${snap.revision} is ${snap.data === null ? "null" : typeof snap.data}, not a plain object`);
      }
      store.state = snap.data;
      store.revision = snap.revision;
      store.applied++;
    },
  };
}

// revisionSync follows topic through subscriber and provider into applier.
export function revisionSync({ subscriber, provider, applier, onError }) {
  let applied = null; // revision applied last, null before the first
  let running = null; // the refresh loop in flight
  let again = false;
  let unsubscribe = null;
  let stopped = false;

  const fail = (phase, err) => {
    onError(phase, err);
    return err;
  };

  async function loop() {
    do {
      again = false;
      let snap;
      try {
        snap = await provider.getSnapshot();
      } catch (e) {
        throw fail("getSnapshot", e);
      }
      if (!isCanonicalRevision(snap?.revision)) throw fail("protocol", new Error(`bad revision ${JSON.stringify(snap?.revision)}`));
      if (stopped) return;
      if (applied !== null && compareRevisions(snap.revision, applied) <= 0) continue;
      try {
        await applier.apply({ revision: snap.revision, data: snap.data });
      } catch (e) {
        throw fail("apply", e);
      }
      applied = snap.revision;
    } while (again && !stopped);
  }

  function refresh() {
    if (running) {
      again = true;
      return running;
    }
    running = loop().finally(() => { running = null; });
    return running;
  }

  function onInvalidation(ev) {
    if (stopped || !isCanonicalRevision(ev?.revision)) return;
    if (compareRevisions(ev.revision, applied ?? "0") <= 0) return;
    refresh().catch(() => {});
  }

  return {
    async start() {
      unsubscribe = await subscriber.subscribe(onInvalidation);
      await refresh();
    },
    stop() {
      stopped = true;
      unsubscribe?.();
    },
    revision: () => applied,
  };
}

export const stores = {}; // sync name -> {state, revision, applied}
export const errors = {}; // sync name -> [{phase, message}]
export const syncs = {}; // sync name -> handle

// start follows topic with a revisionSync over client(clientName).subscriber
// and .provider(topic, providerOpts) into a strict applier, and resolves to
// {ok} or {error} (the message start rejected with).
export async function start(name, clientName, topic, providerOpts) {
  const c = clients[clientName];
  stores[name] = { state: undefined, revision: null, applied: 0 };
  errors[name] = [];
  const s = revisionSync({
    subscriber: c.subscriber(topic),
    provider: providerOpts ? c.provider(topic, providerOpts) : c.provider(topic),
    applier: strictApplier(stores[name]),
    onError: (phase, err) => errors[name].push({ phase, message: String(err?.message ?? err) }),
  });
  syncs[name] = s;
  try {
    await s.start();
    return { ok: true };
  } catch (e) {
    return { ok: false, error: String(e?.message ?? e) };
  }
}
