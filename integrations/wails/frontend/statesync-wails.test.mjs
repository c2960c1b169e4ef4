// Run with: node --test frontend/statesync-wails.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { createWailsTransport, DEFAULT_EVENT } from "./statesync-wails.js";

// fakeEvents records EventsOn/EventsOff calls and delivers like Wails does.
function fakeEvents({ returnsOff = true } = {}) {
  const listeners = new Map();
  const calls = { on: [], off: [], unlisten: 0 };
  return {
    calls,
    EventsOn(event, cb) {
      calls.on.push(event);
      listeners.set(event, cb);
      if (!returnsOff) return undefined;
      return () => {
        calls.unlisten++;
        listeners.delete(event);
      };
    },
    EventsOff(event) {
      calls.off.push(event);
      listeners.delete(event);
    },
    emit(event, ...data) {
      const cb = listeners.get(event);
      if (cb) cb(...data);
    },
    // emitStale delivers even to a removed listener, as a late event would.
    stale: listeners,
  };
}

const noCall = async () => {
  throw new Error("unexpected call");
};

test("B-TRANS-01 subscribe listens once and forwards payloads unchanged", async () => {
  const ev = fakeEvents();
  const t = createWailsTransport({ EventsOn: ev.EventsOn, EventsOff: ev.EventsOff, call: noCall });
  const got = [];
  const unsub = await t.subscriber("settings").subscribe((p) => got.push(p));
  assert.deepEqual(ev.calls.on, [DEFAULT_EVENT]);
  const garbage = { garbage: true };
  const good = { topic: "settings", revision: "5" };
  ev.emit(DEFAULT_EVENT, garbage);
  ev.emit(DEFAULT_EVENT, good);
  ev.emit("other", { topic: "settings", revision: "9" });
  assert.equal(got.length, 2);
  assert.equal(got[0], garbage); // same object, unchanged
  assert.equal(got[1], good);
  assert.equal(typeof unsub, "function");
});

test("B-TRANS-02 unsubscribe calls the transport's unlisten and stops delivery", async () => {
  const ev = fakeEvents();
  const t = createWailsTransport({ EventsOn: ev.EventsOn, call: noCall, eventName: "custom" });
  const got = [];
  const unsub = await t.subscriber("settings").subscribe((p) => got.push(p));
  const cb = ev.stale.get("custom");
  unsub();
  unsub(); // idempotent
  assert.equal(ev.calls.unlisten, 1);
  ev.emit("custom", { topic: "settings", revision: "2" });
  cb({ topic: "settings", revision: "3" }); // a late delivery to the removed listener
  assert.deepEqual(got, []);
});

test("B-TRANS-02 without a returned canceller, unsubscribe falls back to EventsOff", async () => {
  const ev = fakeEvents({ returnsOff: false });
  const t = createWailsTransport({ EventsOn: ev.EventsOn, EventsOff: ev.EventsOff, call: noCall });
  const unsub = await t.subscriber("settings").subscribe(() => {});
  unsub();
  assert.deepEqual(ev.calls.off, [DEFAULT_EVENT]);
});

test("B-TRANS-03 getSnapshot calls the bound method with args unchanged and returns its result unmodified", async () => {
  const ev = fakeEvents();
  const seen = [];
  const result = { revision: "1", data: { ok: true } };
  const call = async (...args) => {
    seen.push(args);
    return result;
  };
  const t = createWailsTransport({ EventsOn: ev.EventsOn, call });
  assert.equal(await t.provider("settings").getSnapshot(), result);
  const cfg = { topic: "settings", windowId: "main", extra: 42 };
  assert.equal(await t.provider("settings", { args: [cfg] }).getSnapshot(), result);
  assert.equal(await t.provider("settings", { args: [] }).getSnapshot(), result);
  assert.deepEqual(seen, [["settings"], [cfg], []]);
  assert.equal(seen[1][0], cfg);
});

test("B-TRANS-04 errors from EventsOn and the bound method propagate unchanged", async () => {
  const listenErr = new Error("listen failed");
  const invokeErr = new Error("invoke failed");
  const t = createWailsTransport({
    EventsOn: () => {
      throw listenErr;
    },
    call: async () => {
      throw invokeErr;
    },
  });
  await assert.rejects(t.subscriber("settings").subscribe(() => {}), (e) => e === listenErr);
  await assert.rejects(t.provider("settings").getSnapshot(), (e) => e === invokeErr);
  const syncErr = new Error("sync throw");
  const t2 = createWailsTransport({
    EventsOn: () => () => {},
    call: () => {
      throw syncErr;
    },
  });
  await assert.rejects(t2.provider("settings").getSnapshot(), (e) => e === syncErr);
});

test("createWailsTransport rejects missing functions", () => {
  assert.throws(() => createWailsTransport({ call: noCall }), TypeError);
  assert.throws(() => createWailsTransport({ EventsOn: () => {} }), TypeError);
});

// wailsRuntime is a fake of a Wails runtime that keeps every listener of
// an event, as the real one does, and whose EventsOn returns a canceller
// only if returnsOff.
function wailsRuntime({ returnsOff }) {
  const listeners = new Map(); // event -> [cb]
  const calls = { on: 0, off: [] };
  return {
    calls,
    EventsOn(event, cb) {
      calls.on++;
      if (!listeners.has(event)) listeners.set(event, []);
      listeners.get(event).push(cb);
      if (!returnsOff) return undefined;
      return () => {
        listeners.set(event, (listeners.get(event) ?? []).filter((x) => x !== cb));
      };
    },
    EventsOff(event) {
      calls.off.push(event);
      listeners.delete(event);
    },
    emit(event, ...data) {
      for (const cb of [...(listeners.get(event) ?? [])]) cb(...data);
    },
    count(event) {
      return (listeners.get(event) ?? []).length;
    },
  };
}

for (const returnsOff of [false, true]) {
  test(`stopping one topic leaves the others listening (EventsOn returns ${returnsOff ? "a canceller" : "undefined"})`, async () => {
    const rt = wailsRuntime({ returnsOff });
    const t = createWailsTransport({ EventsOn: rt.EventsOn, EventsOff: rt.EventsOff, call: noCall });
    const got = { a: [], b: [] };
    const stopA = await t.subscriber("a").subscribe((p) => got.a.push(p));
    const stopB = await t.subscriber("b").subscribe((p) => got.b.push(p));
    assert.equal(rt.calls.on, 1, "one runtime listener per transport");
    stopA();
    const ev = { topic: "b", revision: "2" };
    rt.emit(DEFAULT_EVENT, ev);
    assert.deepEqual(got.b, [ev], "b still receives after a stopped");
    assert.deepEqual(got.a, []);
    assert.deepEqual(rt.calls.off, [], "EventsOff not called while a subscription remains");
    stopB();
    assert.equal(rt.count(DEFAULT_EVENT), 0, "the listener is removed with the last subscription");
    assert.deepEqual(rt.calls.off, returnsOff ? [] : [DEFAULT_EVENT]);
    // Subscribing again listens again.
    const stopC = await t.subscriber("c").subscribe((p) => got.b.push(p));
    assert.equal(rt.count(DEFAULT_EVENT), 1);
    stopC();
  });
}

test("without a canceller nor EventsOff, resubscribing keeps one runtime listener", async () => {
  const rt = wailsRuntime({ returnsOff: false });
  const t = createWailsTransport({ EventsOn: rt.EventsOn, call: noCall });
  const got = [];
  for (let i = 0; i < 3; i++) {
    const stop = await t.subscriber("a").subscribe((p) => got.push(p));
    stop();
  }
  const stop = await t.subscriber("a").subscribe((p) => got.push(p));
  assert.equal(rt.count(DEFAULT_EVENT), 1, "one runtime listener");
  const ev = { topic: "a", revision: "1" };
  rt.emit(DEFAULT_EVENT, ev);
  assert.deepEqual(got, [ev], "each event delivered once");
  stop();
});
