// The in-process scenarios of `statesync bench` (gate_stale_events,
// cycle_sequential, fanout; see internal/bench) run on the TypeScript
// engine, so that the two can be compared in one run on one machine.
//
// It bundles nothing: it is given the directory of an @statesync/core build
// and imports createRevisionSync from it.
//
//   node internal/bench/ts/bench.mjs CORE_DIR [NAME…] [-n SIZES]
//
// CORE_DIR is a directory with a package.json (its exports "." import or
// default, module or main entry is loaded) or an index.mjs / index.js.
// NAME is gate_stale_events, cycle_sequential or fanout (all by default).
// SIZES is as in `statesync bench -n`: a scale factor of the default sizes
// (0.01) or name=size pairs, fanout as WINDOWSxUPDATES, comma-separated
// (gate_stale_events=1000,fanout=10x10). It prints one JSON object per line
// with the field names of the Go scenarios, plus "engine":"typescript";
// allocs_per_op is null (Node does not count allocations).
//
// The workloads are those of internal/bench: one topic, an in-process bus
// that delivers each invalidation synchronously to every subscribed
// handler, a provider that returns the current snapshot
// {revision, data:{v:rev}} (encoded once per revision) and counts its
// calls, and an applier that records.

import { readFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const TOPIC = "bench";
const NAMES = ["gate_stale_events", "cycle_sequential", "fanout"];
const DEFAULTS = {
  gate_stale_events: 1_000_000,
  cycle_sequential: 200_000,
  fanout: [
    [1000, 1000],
    [10000, 100],
  ],
};

function usage(msg) {
  process.stderr.write(`bench.mjs: ${msg}\nusage: node bench.mjs CORE_DIR [NAME…] [-n SIZES]\n`);
  process.exit(2);
}

// entry finds the module file of the build in dir.
function entry(dir) {
  const pkgPath = join(dir, "package.json");
  if (existsSync(pkgPath)) {
    let pkg;
    try {
      pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
    } catch (e) {
      usage(`${pkgPath}: ${e.message}`);
    }
    let exp = pkg.exports;
    if (exp && typeof exp === "object" && "." in exp) exp = exp["."];
    if (exp && typeof exp === "object") exp = exp.import ?? exp.default ?? exp.node;
    if (exp && typeof exp === "object") exp = exp.default;
    const file = (typeof exp === "string" && exp) || pkg.module || pkg.main;
    if (typeof file === "string") return join(dir, file);
  }
  for (const f of ["index.mjs", "index.js"]) {
    if (existsSync(join(dir, f))) return join(dir, f);
  }
  usage(`${dir}: no package.json entry, index.mjs or index.js`);
}

function parseSizes(s) {
  const sizes = structuredClone(DEFAULTS);
  if (!s) return sizes;
  if (/^[0-9.]+$/.test(s)) {
    const f = Number(s);
    if (!(f > 0) || f > 1000) usage(`bad scale factor ${s}`);
    const scale = (n) => Math.max(1, Math.round(n * f));
    sizes.gate_stale_events = scale(sizes.gate_stale_events);
    sizes.cycle_sequential = scale(sizes.cycle_sequential);
    sizes.fanout = sizes.fanout.map(([w, u]) => [scale(w), scale(u)]);
    return sizes;
  }
  let fanout = null;
  for (const pair of s.split(",")) {
    const m = /^([a-z_]+)=([0-9]+)(?:x([0-9]+))?$/.exec(pair.trim());
    if (!m || !NAMES.includes(m[1])) usage(`bad size ${JSON.stringify(pair)}`);
    const a = Number(m[2]);
    const b = m[3] === undefined ? undefined : Number(m[3]);
    if (!(a >= 1 && a <= 1e8) || (b !== undefined && !(b >= 1 && b <= 1e8))) usage(`bad size ${pair}`);
    if (m[1] === "fanout") {
      if (b === undefined) usage(`fanout size is WINDOWSxUPDATES: ${pair}`);
      (fanout ??= []).push([a, b]);
    } else {
      if (b !== undefined) usage(`bad size ${pair}`);
      sizes[m[1]] = a;
    }
  }
  if (fanout) sizes.fanout = fanout;
  return sizes;
}

// Bus delivers each invalidation synchronously to every handler of its
// topic, looked up by topic on each delivery, as memsync.Bus does.
class Bus {
  topics = new Map();
  subscriber() {
    return {
      subscribe: async (handler) => {
        let hs = this.topics.get(TOPIC);
        if (!hs) this.topics.set(TOPIC, (hs = []));
        hs.push(handler);
        return () => {
          const i = hs.indexOf(handler);
          if (i >= 0) hs.splice(i, 1);
        };
      },
    };
  }
  publish(ev) {
    const hs = this.topics.get(ev.topic);
    if (!hs) return;
    for (let i = 0; i < hs.length; i++) hs[i](ev);
  }
}

// Provider serves the current snapshot and counts its calls.
class Provider {
  calls = 0;
  constructor(rev) {
    this.set(rev);
  }
  set(rev) {
    const r = String(rev);
    this.cur = { revision: r, data: { v: rev } };
  }
  getSnapshot = async () => {
    this.calls++;
    return this.cur;
  };
}

const now = () => process.hrtime.bigint();
const yieldLoop = () => new Promise((r) => setImmediate(r));

async function startHandle(core, bus, provider, apply) {
  const h = core.createRevisionSync({
    topic: TOPIC,
    subscriber: bus.subscriber(),
    provider,
    applier: { apply },
    onError: (e) => {
      throw new Error(`engine error: ${e?.phase}: ${e?.error?.message ?? e}`);
    },
  });
  await h.start();
  return h;
}

async function gate(core, n) {
  const bus = new Bus();
  const provider = new Provider(5);
  const h = await startHandle(core, bus, provider, () => {});
  provider.calls = 0;
  const ev = { topic: TOPIC, revision: "3" };
  globalThis.gc?.();
  const t0 = now();
  for (let i = 0; i < n; i++) bus.publish(ev);
  const ns = Number(now() - t0);
  await yieldLoop();
  const calls = provider.calls;
  h.stop();
  return { name: "gate_stale_events", engine: "typescript", ns_per_op: ns / n, allocs_per_op: null, provider_calls: calls };
}

async function cycle(core, n) {
  const bus = new Bus();
  const provider = new Provider(1);
  let last = 0;
  let applied = 0;
  let wake = null;
  const h = await startHandle(core, bus, provider, (s) => {
    last = Number(s.revision);
    applied++;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  });
  applied = 0;
  globalThis.gc?.();
  const t0 = now();
  for (let rev = 2; rev < 2 + n; rev++) {
    provider.set(rev);
    bus.publish({ topic: TOPIC, revision: String(rev) });
    while (last < rev) await new Promise((r) => (wake = r));
  }
  const ns = Number(now() - t0);
  h.stop();
  return { name: "cycle_sequential", engine: "typescript", refresh: "default", ns_per_op: ns / n, allocs_per_op: null, applied };
}

async function fanout(core, windows, updates) {
  const bus = new Bus();
  const provider = new Provider(1);
  const final = 1 + updates;
  let remaining = windows;
  let done;
  const allDone = new Promise((r) => (done = r));
  const hs = [];
  for (let i = 0; i < windows; i++) {
    let last = 0;
    hs.push(
      await startHandle(core, bus, provider, (s) => {
        const r = Number(s.revision);
        if (r <= last) throw new Error(`handle ${i} applied ${r} after ${last}`);
        last = r;
        if (r === final && --remaining === 0) done();
      }),
    );
  }
  provider.calls = 0;
  globalThis.gc?.();
  const t0 = now();
  for (let i = 1; i <= updates; i++) {
    const rev = 1 + i;
    provider.set(rev);
    bus.publish({ topic: TOPIC, revision: String(rev) });
    if (i % 10 === 0) await yieldLoop();
  }
  await allDone;
  const ms = Number(now() - t0) / 1e6;
  // Let queued refreshes end: they count, as in the Go scenario.
  for (let i = 0; i < 3; i++) await yieldLoop();
  const fetches = provider.calls;
  for (const h of hs) h.stop();
  return {
    name: "fanout",
    engine: "typescript",
    refresh: "default",
    windows,
    updates,
    ms,
    fetches,
    fetches_per_window: fetches / windows,
  };
}

async function main() {
  const args = process.argv.slice(2);
  let dir = null;
  let sizeArg = "";
  const names = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-n" || a === "--n") {
      if (i + 1 >= args.length) usage("-n needs a value");
      sizeArg = args[++i];
    } else if (a.startsWith("-n=") || a.startsWith("--n=")) {
      sizeArg = a.slice(a.indexOf("=") + 1);
    } else if (dir === null) {
      dir = a;
    } else if (NAMES.includes(a)) {
      names.push(a);
    } else {
      usage(`unknown scenario ${JSON.stringify(a)} (known: ${NAMES.join(", ")})`);
    }
  }
  if (dir === null) usage("missing CORE_DIR (a build of @statesync/core)");
  const sizes = parseSizes(sizeArg);
  const core = await import(pathToFileURL(entry(resolve(dir))).href);
  if (typeof core.createRevisionSync !== "function") usage(`${dir}: no createRevisionSync export`);
  for (const name of names.length ? names : NAMES) {
    if (name === "gate_stale_events") print(await gate(core, sizes.gate_stale_events));
    if (name === "cycle_sequential") print(await cycle(core, sizes.cycle_sequential));
    if (name === "fanout") for (const [w, u] of sizes.fanout) print(await fanout(core, w, u));
  }
}

function print(r) {
  process.stdout.write(JSON.stringify(r) + "\n");
}

main().catch((e) => {
  process.stderr.write(`bench.mjs: ${e?.stack ?? e}\n`);
  process.exit(1);
});
