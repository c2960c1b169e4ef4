// statesync.js — browser client for a statesync server (wire protocol v1).
//
// An ES module with no dependencies and no build step. One EventSource per
// client carries the invalidations of every topic the client follows.
//
//   import { connect } from "/statesync.js";
//   const client = connect({ url: "http://127.0.0.1:8765", token: "…" });
//   const stop = await client.follow("settings", (snap) => render(snap.data));
//   await client.put("settings", { theme: "dark" }, { ifRevision: "42" });
//   const unwatch = await client.watchPrefix("cart:", (ev, snap) => …); // every topic under cart:
//
// client.subscriber(topic) and client.provider(topic) implement the
// InvalidationSubscriber and SnapshotProvider interfaces of the TypeScript
// @statesync/core package, so its createRevisionSync and framework adapters
// work unchanged against a Go server.
//
// Options of connect (all optional):
//   url             the server (default: this page's origin).
//   token           a bearer token (sent as access_token on the event stream).
//   inline          ask the event stream to carry snapshots of at most this
//                   many bytes, so that they need no GET (default 0: none).
//                   A carried snapshot answers getSnapshot only while it is
//                   the latest revision (and epoch) the client has been told
//                   of for its topic and the stream it came on is still up;
//                   otherwise getSnapshot fetches.
//   emptyData       a function: getSnapshot, provider and follow give
//                   emptyData(topic) as the data of a topic that has none
//                   (never written, or deleted), instead of null. The
//                   adapters of @statesync/* want an object (in their default
//                   strict mode they throw on null), so pass () => ({}) for
//                   them. Called once per snapshot: each gets a fresh value.
//                   client.provider(topic, {emptyData}) sets it per provider.
//   EventSourceImpl the EventSource class (default: globalThis.EventSource).
//                   Node 20 has none: pass one, e.g. EventSource from the
//                   "eventsource" npm package; connect throws at once without.
//
// Every getSnapshot returns data the caller owns: a store may edit it in
// place without changing what the next call returns (cached responses and
// carried snapshots are kept as text and parsed again).

const CANONICAL = /^(0|[1-9][0-9]*)$/;
const U64_MAX = "18446744073709551615";

/** isCanonicalRevision reports whether r is a canonical u64 decimal string. */
export function isCanonicalRevision(r) {
  return typeof r === "string" && CANONICAL.test(r) &&
    (r.length < 20 || (r.length === 20 && r <= U64_MAX));
}

/** compareRevisions returns -1, 0 or 1 for canonical revision strings. */
export function compareRevisions(a, b) {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** StateSyncError is thrown for HTTP errors; conflicts have status 412. */
export class StateSyncError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.name = "StateSyncError";
    this.status = status;
    this.code = code;
    this.body = body;
    /** For a conflict (412/409): the topic's current revision, if the server said. */
    this.currentRevision = body?.error?.revision;
  }
  get conflict() { return this.status === 412 || this.status === 409; }
}

/**
 * connect returns a client for the server at url (default: this page's
 * origin). token, if given, is sent as a bearer token (and as access_token on
 * the event stream, which EventSource cannot give headers to). The other
 * options (inline, emptyData, EventSourceImpl) are described at the top of
 * this file. It throws a TypeError if there is no EventSource class.
 */
export function connect({ url = globalThis.location?.origin ?? "", token, inline = 0, emptyData, EventSourceImpl } = {}) {
  const ES = EventSourceImpl ?? globalThis.EventSource;
  if (typeof ES !== "function") {
    throw new TypeError('statesync: no EventSource: pass EventSourceImpl (e.g. from the "eventsource" package) in Node');
  }
  checkEmptyData(emptyData);
  const c = new Client(url.replace(/\/+$/, ""), token, inline, ES);
  c.emptyData = emptyData;
  return c;
}

function checkEmptyData(f) {
  if (f !== undefined && f !== null && typeof f !== "function") {
    throw new TypeError("statesync: emptyData must be a function returning the data of a topic without data");
  }
}

class Client {
  constructor(base, token, inline, ES) {
    this.base = base;
    this.token = token;
    this.inline = inline;
    this.ES = ES;
    this.handlers = new Map(); // topic -> Set<handler(event, inlineSnapshot?)>
    this.inlineCache = new Map(); // topic -> {revision, epoch, text, data, es}: the last snapshot the stream carried
    this.latest = new Map(); // topic -> {revision, epoch}: the newest revision the client has been told of
    this.snapCache = new Map(); // topic -> {etag, text}: the body of the last 200
    this.emptyData = undefined; // see connect
    this.onRefused = new Map(); // topic -> Map<handler, onRefused(err)>: told of a refusal after a reconnect
    this.waiters = new Map(); // topic -> Set<{resolve, reject}>: subscriptions waiting for the stream to take the topic in
    this.live = new Set(); // the topics the current stream has taken in
    this.esTaken = false; // the current connection sent a frame other than refused
    this.esRefused = new Set(); // the topics the current stream refused
    this.esList = []; // the topics the current stream named
    this.reopenAfterRefusals = false; // the current stream refused topics: reopen without them
    this.es = null;
    this.esTopics = "";
    this.reopenScheduled = false;
    this.retryTimer = null; // reopens a stream the browser gave up on
    this.failures = 0; // streams given up on since the last open
    this.closed = false;
    this.statusListeners = new Set();
    this.prefixWatches = new Set(); // the stop functions of the watchPrefix streams
  }

  headers(extra) {
    const h = { ...extra };
    if (this.token) h["Authorization"] = `Bearer ${this.token}`;
    return h;
  }

  topicURL(topic) {
    return `${this.base}/v1/topics/${encodeURIComponent(topic)}`;
  }

  // snapshotURL is the URL of a GET of topic. It asks for at least the
  // newest revision (and epoch) the client has been told of: the
  // invalidation the fetch acts on, or the client's own write. Behind a
  // load balancer the GET may reach another server than the one that told
  // it, whose feed from the shared store lags: that server then reads the
  // store instead of answering older (minRevision, docs/PROTOCOL.md).
  snapshotURL(topic) {
    const l = this.latest.get(topic);
    if (!l || l.revision === "0") return this.topicURL(topic);
    const q = new URLSearchParams({ minRevision: l.revision });
    if (typeof l.epoch === "string" && l.epoch !== "") q.set("epoch", l.epoch);
    return `${this.topicURL(topic)}?${q}`;
  }

  // --- the shared event stream ---

  // listen adds handler to the handlers of topic and returns the function
  // that removes it. onRefused(err), if given, is called if the server
  // refuses the topic after its subscription resolved (after a reconnect,
  // or when the first connection failed and a later one refuses it).
  listen(topic, handler, onRefused) {
    let set = this.handlers.get(topic);
    if (!set) {
      set = new Set();
      this.handlers.set(topic, set);
    }
    set.add(handler);
    if (onRefused) {
      if (!this.onRefused.has(topic)) this.onRefused.set(topic, new Map());
      this.onRefused.get(topic).set(handler, onRefused);
    }
    this.scheduleReopen();
    return () => {
      const s = this.handlers.get(topic);
      if (!s || !s.delete(handler)) return;
      this.onRefused.get(topic)?.delete(handler);
      if (s.size === 0) {
        this.handlers.delete(topic);
        this.onRefused.delete(topic);
      }
      this.scheduleReopen();
    };
  }

  // subscribe is listen that waits for the stream: it resolves to the
  // function that removes handler once the stream has taken topic in (its
  // first frame other than refused arrived: every later change of topic
  // reaches handler), or once the stream failed to connect (the client
  // keeps retrying, and the first frames after a reconnection carry the
  // current revisions). It rejects with a StateSyncError (status 403 or
  // 400) if the server refuses the topic; the other topics are not affected.
  subscribe(topic, handler, onRefused) {
    const unlisten = this.listen(topic, handler, onRefused);
    if (this.live.has(topic) || this.closed) return Promise.resolve(unlisten);
    return new Promise((resolve, reject) => {
      if (!this.waiters.has(topic)) this.waiters.set(topic, new Set());
      this.waiters.get(topic).add({
        resolve: () => resolve(unlisten),
        reject: (err) => {
          unlisten();
          reject(err);
        },
      });
    });
  }

  // settle resolves the subscriptions waiting for topic, or for every
  // topic if topic is undefined.
  settle(topic) {
    const topics = topic === undefined ? [...this.waiters.keys()] : [topic];
    for (const t of topics) {
      const set = this.waiters.get(t);
      this.waiters.delete(t);
      for (const w of set ?? []) w.resolve();
    }
  }

  // took records that es, the current stream, has taken its topics in: its
  // refused frames, which come first, are behind it.
  took(es) {
    if (this.es !== es || this.esTaken) return;
    this.esTaken = true;
    for (const t of this.esList) {
      if (this.esRefused.has(t)) continue;
      this.live.add(t);
      this.settle(t);
    }
    if (this.reopenAfterRefusals) {
      this.reopenAfterRefusals = false;
      this.scheduleReopen(); // without the refused topics
    }
  }

  // refused handles a refused frame of es: the server does not follow the
  // frame's topic (the token may not read it, or its name is invalid). The
  // subscriptions waiting for it reject; the handlers it already had are
  // told (onRefused, else the console); the topic is dropped, and the
  // stream is reopened without the refused topics once, when it has taken
  // the others in or ended. The other topics are not affected.
  refused(es, text) {
    if (this.es !== es) return;
    let r;
    try {
      r = JSON.parse(text);
    } catch {
      return;
    }
    if (!r || typeof r.topic !== "string" || !this.esList.includes(r.topic)) return;
    const topic = r.topic;
    const status = r.code === "forbidden" ? 403 : r.code === "unauthorized" ? 401 : 400;
    const err = new StateSyncError(status, r.code, r.message || `the server refused topic ${JSON.stringify(topic)}`,
      { error: { code: r.code, message: r.message, topic } });
    err.topic = topic;
    this.esRefused.add(topic);
    this.live.delete(topic);
    // Reopen even if the same topics are followed again by then: the
    // server must be asked again. Once, when the stream has taken the
    // others in or ended (the refused frames come first), not per frame.
    this.esTopics = null;
    this.reopenAfterRefusals = true;
    const waiting = this.waiters.get(topic);
    this.waiters.delete(topic);
    for (const w of waiting ?? []) w.reject(err);
    const late = this.handlers.get(topic);
    const told = this.onRefused.get(topic);
    this.handlers.delete(topic);
    this.onRefused.delete(topic);
    for (const h of late ?? []) {
      const fn = told?.get(h);
      try {
        if (fn) fn(err);
        else console.error(`[statesync] the server refused topic ${JSON.stringify(topic)}; it is no longer followed`, err);
      } catch (e) {
        console.error("[statesync] onRefused threw", e);
      }
    }
  }

  // scheduleReopen reopens the stream for the current topics, in a
  // microtask. While the stream's refused frames are being read, it waits
  // for their end (took, or the stream's end), which reopens once.
  scheduleReopen() {
    if (this.reopenScheduled || this.closed || this.reopenAfterRefusals) return;
    this.reopenScheduled = true;
    queueMicrotask(() => {
      this.reopenScheduled = false;
      this.reopen();
    });
  }

  reopen() {
    const topics = [...this.handlers.keys()].sort();
    const key = topics.join("\n");
    if (key === this.esTopics && this.es) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.es) this.es.close();
    this.es = null;
    this.esTopics = key;
    this.esList = topics;
    this.esTaken = false;
    this.esRefused = new Set();
    this.reopenAfterRefusals = false;
    this.live.clear();
    this.inlineCache.clear(); // carried by the old stream: never fresh on the new one
    if (topics.length === 0 || this.closed) {
      this.settle();
      return;
    }
    const q = new URLSearchParams();
    for (const t of topics) q.append("topic", t);
    if (this.inline > 0) q.set("inline", String(this.inline));
    if (this.token) q.set("access_token", this.token);
    let es;
    try {
      es = new this.ES(`${this.base}/v1/events?${q}`);
    } catch (e) {
      // A bad URL, say: no retry can help. The waiting subscriptions fail
      // with the reason instead of waiting forever.
      this.esTopics = "";
      const waiting = [...this.waiters.values()].flatMap((set) => [...set]);
      this.waiters.clear();
      console.error("[statesync] cannot open the event stream", e);
      for (const w of waiting) w.reject(e);
      return;
    }
    this.es = es;
    // A topic the server will not follow is refused alone, in a refused
    // frame before the first frames of the others.
    es.addEventListener("refused", (m) => this.refused(es, m.data));
    es.addEventListener("invalidation", (m) => {
      if (this.es !== es) return; // a frame of a stream closed meanwhile
      this.took(es);
      this.onFrame(m.data, false);
    });
    es.addEventListener("snapshot", (m) => {
      if (this.es !== es) return;
      this.took(es);
      this.onFrame(m.data, true);
    });
    es.onopen = () => {
      this.failures = 0;
      this.emitStatus("open");
    };
    es.onerror = () => {
      if (this.es !== es) return;
      if (this.reopenAfterRefusals) {
        // The server refused every topic and ended the stream: reopen
        // without them (or close, if none is left).
        this.reopenAfterRefusals = false;
        this.scheduleReopen();
        return;
      }
      this.inlineCache.clear(); // the stream is down: nothing says they are still the newest
      // Nothing is live until the next connection sends its first frames;
      // the subscriptions waiting for this one stop waiting.
      this.esTaken = false;
      this.esRefused = new Set();
      this.live.clear();
      this.settle();
      if (es.readyState !== 2) {
        this.emitStatus("reconnecting"); // the browser retries by itself
        return;
      }
      // The browser gave up on the stream for good, as it does on an HTTP
      // error status (a 503 from a server shutting down, a 502 from a proxy
      // whose backend restarts, a 401 after a token change): reopen it
      // after an exponential backoff with jitter (a random delay between
      // half and all of 1 s, 2 s, 4 s … 30 s). The new stream's first frames
      // carry the current revision of every topic, so followers miss nothing.
      this.emitStatus("closed");
      es.close();
      this.es = null;
      this.esTopics = "";
      const cap = Math.min(30000, 1000 * 2 ** Math.min(this.failures++, 5));
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.reopen();
      }, cap / 2 + Math.random() * cap / 2);
    };
  }

  onFrame(text, isSnapshot) {
    let ev;
    try {
      ev = JSON.parse(text);
    } catch {
      return; // not JSON: nothing to deliver
    }
    if (!ev || typeof ev.topic !== "string") return;
    this.noteRevision(ev.topic, ev.revision, ev.epoch);
    if (isSnapshot && isCanonicalRevision(ev.revision)) {
      // Keep the text too: the first getSnapshot it answers gets data, later
      // ones parse the text again, so that no caller shares another's data.
      this.inlineCache.set(ev.topic, { revision: ev.revision, epoch: ev.epoch, text, data: ev.data, es: this.es });
    } else if (!this.inlineFresh(ev.topic)) {
      this.inlineCache.delete(ev.topic); // announced without data: older now
    }
    const set = this.handlers.get(ev.topic);
    if (!set) return;
    const event = { topic: ev.topic, revision: ev.revision };
    if (typeof ev.epoch === "string") event.epoch = ev.epoch;
    if (typeof ev.sourceId === "string") event.sourceId = ev.sourceId;
    if (typeof ev.timestampMs === "number") event.timestampMs = ev.timestampMs;
    for (const h of [...set]) {
      try {
        h(event);
      } catch (e) {
        console.error("[statesync] handler threw", e);
      }
    }
  }

  /**
   * onStatus calls fn with the event stream's status: "open", "reconnecting"
   * (the browser retries) or "closed" (the browser gave up, e.g. on an HTTP
   * error status; the client reopens the stream after a backoff). Returns an
   * unsubscribe function.
   */
  onStatus(fn) {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  emitStatus(s) {
    for (const fn of [...this.statusListeners]) {
      try { fn(s); } catch { /* listener errors are the listener's */ }
    }
  }

  /** close ends the event streams (watchPrefix's too); followers stop receiving invalidations. */
  close() {
    this.closed = true;
    for (const stop of [...this.prefixWatches]) stop();
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.es) this.es.close();
    this.es = null;
    this.handlers.clear();
    this.onRefused.clear();
    this.live.clear();
    this.inlineCache.clear();
    this.settle();
  }

  // --- @statesync/core interfaces ---

  /**
   * subscriber(topic) is an InvalidationSubscriber of @statesync/core. Its
   * subscribe(handler) resolves to the unsubscribe function once the event
   * stream has taken the topic in (or failed to connect: the client keeps
   * retrying), so that no later change is missed; it rejects with a
   * StateSyncError (status 403, code "forbidden"; or 400, "invalid_topic")
   * if the server refuses the topic, which the other topics of the client
   * do not notice. A refusal after a reconnect (the token's grants changed)
   * is logged to the console and the topic is no longer followed.
   */
  subscriber(topic) {
    return {
      subscribe: (handler) => this.subscribe(topic, handler),
    };
  }

  /**
   * provider(topic) is a SnapshotProvider of @statesync/core. Option:
   * emptyData, as connect's, for this provider's snapshots.
   */
  provider(topic, { emptyData } = {}) {
    checkEmptyData(emptyData);
    const opts = emptyData ? { emptyData } : undefined;
    return { getSnapshot: () => this.getSnapshot(topic, opts) };
  }

  /**
   * getSnapshot resolves to {revision, epoch?, data} of topic: the snapshot
   * the event stream carried if it is still the latest (see connect's
   * inline), else a GET (conditional on the last one's ETag, and asking
   * for at least the newest revision the client was told of or wrote,
   * so that a server whose feed lags reads its store). The data is
   * the caller's own. A topic without data has data null, or
   * emptyData(topic) (option emptyData, default connect's).
   */
  async getSnapshot(topic, { emptyData = this.emptyData } = {}) {
    const snap = this.takeInline(topic) ?? await this.fetchSnapshot(topic);
    if (snap.data === null && emptyData) snap.data = emptyData(topic);
    return snap;
  }

  // noteRevision records that topic is at revision (of epoch, if a string)
  // or newer: what frames announce, GETs return and writes make.
  noteRevision(topic, revision, epoch) {
    if (!isCanonicalRevision(revision)) return;
    const cur = this.latest.get(topic);
    if (!cur || (typeof epoch === "string" && epoch !== cur.epoch) || compareRevisions(revision, cur.revision) > 0) {
      this.latest.set(topic, { revision, epoch: typeof epoch === "string" ? epoch : cur?.epoch });
    }
  }

  // inlineFresh reports whether the carried snapshot of topic may answer
  // getSnapshot: it is the latest revision and epoch the client knows of,
  // and came on the stream that is open now (a stream that went down or
  // was replaced may have missed announcements).
  inlineFresh(topic) {
    const c = this.inlineCache.get(topic);
    const l = this.latest.get(topic);
    return !!c && !!l && c.es === this.es && this.es !== null &&
      c.revision === l.revision && (c.epoch ?? "") === (l.epoch ?? "");
  }

  // takeInline returns a snapshot of the caller's own from the carried
  // snapshot of topic if it is fresh, and forgets it if not.
  takeInline(topic) {
    const c = this.inlineCache.get(topic);
    if (!c) return undefined;
    if (!this.inlineFresh(topic)) {
      this.inlineCache.delete(topic);
      return undefined;
    }
    let data = c.data;
    if (c.given) {
      data = JSON.parse(c.text).data;
    } else {
      c.given = true;
      c.data = undefined; // the caller owns it now; the text stays
    }
    const snap = { revision: c.revision, data: data ?? null };
    if (typeof c.epoch === "string") snap.epoch = c.epoch;
    return snap;
  }

  // fetchSnapshot GETs the snapshot of topic, conditional on the ETag of
  // the last 200, whose body is kept as text and parsed again on a 304,
  // and of at least the newest revision the client knows of (snapshotURL).
  async fetchSnapshot(topic) {
    const prev = this.snapCache.get(topic);
    const res = await fetch(this.snapshotURL(topic), {
      headers: this.headers(prev ? { "If-None-Match": prev.etag } : {}),
      cache: "no-store",
    });
    const notModified = res.status === 304 && prev;
    const text = notModified ? prev.text : await res.text();
    const body = parseBody(text);
    if (!res.ok && !notModified) throw httpError(res, body);
    if (!body || !isCanonicalRevision(body.revision)) {
      throw new StateSyncError(res.status, "protocol", `Non-canonical snapshot revision: ${JSON.stringify(body?.revision)}`, body);
    }
    const snap = { revision: body.revision, data: body.data ?? null };
    if (typeof body.epoch === "string") snap.epoch = body.epoch;
    this.noteRevision(topic, snap.revision, snap.epoch);
    const etag = res.headers.get("ETag");
    if (!notModified && etag) this.snapCache.set(topic, { etag, text });
    return snap;
  }

  // --- writes ---

  /** put replaces topic's data; with {ifRevision} only if it is at that revision (else a 412 StateSyncError). */
  put(topic, data, opts = {}) {
    return this.write("PUT", topic, JSON.stringify(data), "application/json", opts);
  }

  /** patch applies a JSON merge patch (RFC 7396) to topic's data. */
  patch(topic, patch, opts = {}) {
    return this.write("PATCH", topic, JSON.stringify(patch), "application/merge-patch+json", opts);
  }

  /** delete sets topic's data to null at a new revision. */
  delete(topic, opts = {}) {
    return this.write("DELETE", topic, undefined, undefined, opts);
  }

  async write(method, topic, body, type, { ifRevision, sourceId } = {}) {
    const h = {};
    if (type) h["Content-Type"] = type;
    if (ifRevision !== undefined && ifRevision !== null) h["If-Match"] = `"${ifRevision}"`;
    if (sourceId) h["X-Source-Id"] = sourceId;
    const res = await fetch(this.topicURL(topic), { method, headers: this.headers(h), body });
    const out = await readBody(res);
    if (!res.ok) throw httpError(res, out);
    // The stream will announce it too; until then a carried snapshot of
    // topic is older than what this client wrote.
    this.noteRevision(topic, out?.revision, out?.epoch);
    return out; // {revision, epoch}
  }

  /** topics lists {topic, revision, epoch} of the topics this client may read. */
  async topics() {
    const res = await fetch(`${this.base}/v1/topics`, { headers: this.headers(), cache: "no-store" });
    const body = await readBody(res);
    if (!res.ok) throw httpError(res, body);
    return Array.isArray(body) ? body : body?.topics ?? [];
  }

  // --- watch by prefix ---

  /**
   * watchPrefix follows every topic whose name starts with prefix that the
   * token may read, those created later included (as etcdctl watch
   * --prefix): handler(event, snapshot?) is called with the current
   * revision of each such topic, then with every later write to one.
   * event is {topic, revision, epoch?, sourceId?, timestampMs?}; snapshot,
   * when the stream carried the data (connect's inline), is {revision,
   * epoch?, data}, the handler's own; otherwise client.getSnapshot(topic)
   * fetches it. The empty prefix follows every topic the token may read.
   * The server filters by the token's grants topic by topic: a prefix
   * wider than them is not refused, and the handler never hears of a
   * topic outside them.
   *
   * Each watchPrefix has an event stream of its own, reopened after a
   * backoff if the browser gives up on it; after every reconnection the
   * handler gets the current revision of every topic again, so it misses
   * nothing. Resolves to the function that ends the watch once the server
   * has accepted the stream; rejects with a StateSyncError if it refuses
   * it (400 "invalid_parameter" for a malformed prefix, "too_many_topics"
   * for a prefix over the server's cap of topics per stream; 401).
   * Options: onError(err), told when the server ends the stream because
   * new topics took its prefix over that cap (it is retried) or refuses a
   * reconnection (default: the console).
   */
  watchPrefix(prefix, handler, { onError } = {}) {
    if (typeof prefix !== "string") return Promise.reject(new TypeError("statesync: watchPrefix: prefix must be a string"));
    if (typeof handler !== "function") return Promise.reject(new TypeError("statesync: watchPrefix: handler must be a function"));
    const report = (err) => {
      if (onError) {
        try { onError(err); } catch (e) { console.error("[statesync] onError threw", e); }
      } else {
        console.error(`[statesync] watch of prefix ${JSON.stringify(prefix)}:`, err);
      }
    };
    const q = new URLSearchParams();
    q.set("prefix", prefix);
    if (this.inline > 0) q.set("inline", String(this.inline));
    const streamURL = `${this.base}/v1/events?${q}`;
    if (this.token) q.set("access_token", this.token);
    const esURL = `${this.base}/v1/events?${q}`;
    let es = null, timer = null, stopped = false, failures = 0;
    let settle = null; // {resolve, reject} until the first stream opened
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
      if (es) es.close();
      es = null;
      this.prefixWatches.delete(stop);
      if (settle) { settle.reject(new StateSyncError(0, "closed", "statesync: the client was closed")); settle = null; }
    };
    this.prefixWatches.add(stop);
    const onFrame = (text, isSnapshot) => {
      let ev;
      try { ev = JSON.parse(text); } catch { return; }
      if (!ev || typeof ev.topic !== "string" || !ev.topic.startsWith(prefix)) return;
      this.noteRevision(ev.topic, ev.revision, ev.epoch);
      const event = { topic: ev.topic, revision: ev.revision };
      if (typeof ev.epoch === "string") event.epoch = ev.epoch;
      if (typeof ev.sourceId === "string") event.sourceId = ev.sourceId;
      if (typeof ev.timestampMs === "number") event.timestampMs = ev.timestampMs;
      let snap;
      if (isSnapshot && isCanonicalRevision(ev.revision)) {
        snap = { revision: ev.revision, data: ev.data ?? null };
        if (typeof ev.epoch === "string") snap.epoch = ev.epoch;
        if (snap.data === null && this.emptyData) snap.data = this.emptyData(ev.topic);
      }
      try {
        handler(event, snap);
      } catch (e) {
        console.error("[statesync] handler threw", e);
      }
    };
    // why asks the server why it refuses the stream: EventSource says
    // nothing of an HTTP error. A 200 means the failure was transient.
    const why = async () => {
      const ctl = new AbortController();
      try {
        const res = await fetch(streamURL, { headers: this.headers({ Accept: "text/event-stream" }), signal: ctl.signal });
        if (res.ok) return null;
        return httpError(res, await readBody(res));
      } catch {
        return null; // unreachable: transient
      } finally {
        ctl.abort();
      }
    };
    const open = () => {
      if (stopped || this.closed) return;
      let cur;
      try {
        cur = new this.ES(esURL);
      } catch (e) {
        if (settle) { settle.reject(e); settle = null; }
        stop();
        return;
      }
      es = cur;
      cur.addEventListener("invalidation", (m) => { if (es === cur) onFrame(m.data, false); });
      cur.addEventListener("snapshot", (m) => { if (es === cur) onFrame(m.data, true); });
      cur.addEventListener("refused", (m) => {
        if (es !== cur) return;
        const r = parseBody(m.data);
        report(new StateSyncError(400, r?.code, r?.message || "the server ended the watch", { error: r }));
      });
      cur.onopen = () => {
        if (es !== cur) return;
        failures = 0;
        if (settle) { settle.resolve(stop); settle = null; }
      };
      cur.onerror = async () => {
        if (es !== cur || cur.readyState !== 2) return; // the browser retries by itself
        cur.close();
        es = null;
        const err = await why();
        if (stopped) return;
        if (err && settle) { const s = settle; settle = null; stop(); s.reject(err); return; }
        if (err) report(err);
        const cap = Math.min(30000, 1000 * 2 ** Math.min(failures++, 5));
        timer = setTimeout(open, cap / 2 + Math.random() * cap / 2);
      };
    };
    return new Promise((resolve, reject) => {
      settle = { resolve, reject };
      open();
    });
  }

  // --- a small engine for users without @statesync/core ---

  /**
   * follow keeps apply(snapshot) called with every newer snapshot of topic:
   * invalidations older than the applied revision cost nothing, at most one
   * fetch is in flight and one queued, snapshots are applied only if newer
   * (or from another epoch: the server restarted without its history).
   * Snapshots come from getSnapshot, so the client's emptyData applies.
   * Resolves, after the first snapshot is applied, to a handle
   * {stop(), refresh(), revision(), epoch(), offer(snapshot)}; rejects
   * with a StateSyncError (status 403 or 400) if the server refuses the
   * topic, as subscriber(topic).subscribe does. A refusal after a
   * reconnect goes to onError(err, "subscribe") and the topic is no longer
   * followed.
   * Options: onError(err, phase), shouldRefresh(event).
   */
  async follow(topic, apply, { onError, shouldRefresh } = {}) {
    const f = new Follower(this, topic, apply, onError, shouldRefresh);
    await f.start();
    return f.handle();
  }
}

class Follower {
  constructor(client, topic, apply, onError, shouldRefresh) {
    Object.assign(this, { client, topic, apply, onError, shouldRefresh });
    this.local = "0";
    this.epoch = undefined;
    this.any = false;
    this.inflight = null;
    this.queued = false;
    this.stopped = false;
    this.unlisten = null;
  }

  report(phase, err) {
    if (this.onError) {
      try { this.onError(err, phase); } catch (e) { console.error("[statesync] onError threw", e); }
    } else {
      console.error(`[statesync] ${phase} error on ${this.topic}`, err);
    }
  }

  onEvent(ev) {
    if (this.stopped) return;
    if (!isCanonicalRevision(ev.revision)) {
      this.report("protocol", new Error(`Non-canonical revision in invalidation event: ${JSON.stringify(ev.revision)}`));
      return;
    }
    const otherEpoch = ev.epoch && this.any && ev.epoch !== this.epoch;
    if (!otherEpoch && compareRevisions(ev.revision, this.local) <= 0) return;
    if (this.shouldRefresh) {
      try {
        if (!this.shouldRefresh(ev)) return;
      } catch (e) {
        this.report("invalidation", e);
        return;
      }
    }
    this.refresh().catch(() => {});
  }

  // refresh resolves after a fetch that started after the call has finished.
  refresh() {
    if (this.stopped) return Promise.resolve();
    if (this.inflight) {
      // The running loop goes round once more before it settles.
      this.queued = true;
      return this.inflight;
    }
    this.inflight = this.runLoop();
    return this.inflight;
  }

  async runLoop() {
    let lastErr;
    try {
      do {
        this.queued = false;
        lastErr = undefined;
        try {
          const snap = await this.client.getSnapshot(this.topic);
          this.gateAndApply(snap);
        } catch (e) {
          lastErr = e;
          if (!this.stopped) this.report(e.code === "protocol" ? "protocol" : "getSnapshot", e);
        }
      } while (this.queued && !this.stopped);
    } finally {
      this.inflight = null;
    }
    if (lastErr) throw lastErr;
  }

  gateAndApply(snap) {
    if (this.stopped) return false;
    if (!isCanonicalRevision(snap.revision)) {
      const e = new Error(`Non-canonical snapshot revision: ${JSON.stringify(snap.revision)}`);
      e.code = "protocol";
      throw e;
    }
    const otherEpoch = snap.epoch && this.any && snap.epoch !== this.epoch;
    if (this.any && !otherEpoch && compareRevisions(snap.revision, this.local) <= 0) return false;
    try {
      this.apply(snap);
    } catch (e) {
      this.report("apply", e);
      return false;
    }
    if (this.stopped) return false;
    this.local = snap.revision;
    if (snap.epoch) this.epoch = snap.epoch;
    this.any = true;
    return true;
  }

  async start() {
    this.unlisten = await this.client.subscribe(this.topic, (ev) => this.onEvent(ev), (err) => {
      this.unlisten = null;
      if (!this.stopped) this.report("subscribe", err);
    });
    try {
      await this.refresh();
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  stop() {
    this.stopped = true;
    if (this.unlisten) this.unlisten();
    this.unlisten = null;
  }

  handle() {
    return {
      stop: () => this.stop(),
      refresh: () => this.refresh(),
      revision: () => this.local,
      epoch: () => this.epoch,
      // offer applies {revision, epoch, data} (e.g. what you just wrote, with
      // the revision put returned), so the echo of your own write costs no fetch.
      offer: (snap) => this.gateAndApply(snap),
    };
  }
}

async function readBody(res) {
  return parseBody(await res.text());
}

function parseBody(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: { code: "bad_response", message: text.slice(0, 200) } };
  }
}

function httpError(res, body) {
  const err = body?.error ?? {};
  return new StateSyncError(res.status, err.code, err.message, body);
}
