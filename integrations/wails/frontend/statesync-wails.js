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
 *   (it then removes every listener of the event).
 * @param {(...args: any[]) => Promise<any>} opts.call
 *   The bound snapshot method, e.g. the generated GetSnapshot.
 * @param {string} [opts.eventName] event name, DEFAULT_EVENT if omitted.
 */
export function createWailsTransport({ EventsOn, EventsOff, call, eventName = DEFAULT_EVENT } = {}) {
  if (typeof EventsOn !== "function") throw new TypeError("statesync-wails: EventsOn must be a function");
  if (typeof call !== "function") throw new TypeError("statesync-wails: call must be a function");

  return {
    /**
     * subscriber(topic) returns {subscribe(handler)}. Every event payload
     * is passed to handler unchanged (the engine validates it and drops
     * other topics); subscribe resolves to an unsubscribe function.
     */
    subscriber(topic) {
      return {
        topic,
        async subscribe(handler) {
          let active = true;
          const off = EventsOn(eventName, (...data) => {
            if (active) handler(data[0]);
          });
          let done = false;
          return () => {
            if (done) return;
            done = true;
            active = false;
            if (typeof off === "function") off();
            else if (typeof EventsOff === "function") EventsOff(eventName);
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
