// statesync-wails.js: a statesync transport over Wails v2 events and bound
// methods, compatible with @statesync/core's subscriber and provider shapes.
// ES module, no dependencies.
//
//   import { EventsOn, EventsOff } from "../wailsjs/runtime/runtime";
//   import { GetSnapshot } from "../wailsjs/go/wailssync/API";
//   import { createWailsTransport } from "./statesync-wails.js";
//
//   const t = createWailsTransport({ EventsOn, EventsOff, call: GetSnapshot });
//   const subscriber = t.subscriber("settings");
//   const provider = t.provider("settings");
//
// The Go side is wailssync.Bridge: it emits each invalidation on
// "statesync:invalidation"; bind bridge.API() for GetSnapshot(topic).

/** The event name wailssync.Bridge emits invalidations on by default. */
export const DEFAULT_EVENT = "statesync:invalidation";

/**
 * createWailsTransport returns factories of subscribers and providers.
 *
 * @param {object} opts
 * @param {(event: string, cb: (...data: any[]) => void) => (void | (() => void))} opts.EventsOn
 *   Wails' runtime EventsOn; it returns a function removing the listener.
 * @param {(event: string) => void} [opts.EventsOff]
 *   Wails' runtime EventsOff, used only if EventsOn returns no function
 *   (older runtimes), once the transport's last subscription ends (it
 *   removes every listener of the event).
 * @param {(...args: any[]) => Promise<any>} opts.call
 *   The bound snapshot method, e.g. the generated GetSnapshot.
 * @param {string} [opts.eventName] event name, DEFAULT_EVENT if omitted.
 */
export function createWailsTransport({ EventsOn, EventsOff, call, eventName = DEFAULT_EVENT } = {}) {
  if (typeof EventsOn !== "function") throw new TypeError("statesync-wails: EventsOn must be a function");
  if (typeof call !== "function") throw new TypeError("statesync-wails: call must be a function");

  // One runtime listener serves every subscription of the transport, so
  // that ending one subscription never removes the listener the others
  // depend on: EventsOff, the only way to remove a listener when EventsOn
  // returns no function, removes every listener of the event.
  const subs = new Set(); // {handler, active} of each live subscription
  let listening = false;
  let off = null; // what EventsOn returned, if a function

  const dispatch = (...data) => {
    for (const s of [...subs]) {
      if (!s.active) continue;
      try {
        s.handler(data[0]);
      } catch (e) {
        console.error("[statesync-wails] handler threw", e);
      }
    }
  };

  const listen = () => {
    if (listening) return;
    const r = EventsOn(eventName, dispatch); // a throw propagates to subscribe
    off = typeof r === "function" ? r : null;
    listening = true;
  };

  const unlisten = () => {
    if (!listening || subs.size > 0) return;
    // Without a canceller nor EventsOff the listener cannot be removed:
    // keep it (with no subscription it does nothing) rather than add a
    // second one at the next subscribe.
    if (!off && typeof EventsOff !== "function") return;
    listening = false;
    const o = off;
    off = null;
    if (o) o();
    else EventsOff(eventName);
  };

  return {
    /**
     * subscriber(topic) returns {subscribe(handler)}. Every event payload
     * is passed to handler unchanged (the engine validates it and drops
     * other topics); subscribe resolves to an unsubscribe function.
     *
     * All the subscriptions of a transport share one runtime listener,
     * removed when the last one ends: with the function EventsOn returned,
     * else with EventsOff (which removes every listener of the event, so
     * other code should not listen to it).
     */
    subscriber(topic) {
      return {
        topic,
        async subscribe(handler) {
          const sub = { handler, active: true };
          subs.add(sub);
          try {
            listen();
          } catch (e) {
            subs.delete(sub);
            throw e;
          }
          let done = false;
          return () => {
            if (done) return;
            done = true;
            sub.active = false;
            subs.delete(sub);
            unlisten();
          };
        },
      };
    },

    /**
     * provider(topic, {args}) returns {getSnapshot()}, calling the bound
     * method with args (default [topic]) passed unchanged and resolving to
     * its result unmodified; errors propagate unchanged.
     */
    provider(topic, { args } = {}) {
      const callArgs = args === undefined ? [topic] : args;
      return {
        topic,
        async getSnapshot() {
          return call(...callArgs);
        },
      };
    },
  };
}
