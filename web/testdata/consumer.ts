// A consumer of the @statesync/client package, type-checked by
// `tsc --strict` in web/package_test.go (TestPackageTypes) against the
// installed package: every export and every option of statesync.d.ts is
// used, and the @ts-expect-error lines check that wrong uses are refused.
import {
  compareRevisions,
  connect,
  isCanonicalRevision,
  StateSyncError,
  type Client,
  type ConnectOptions,
  type EventSourceLike,
  type FollowHandle,
  type InvalidationEvent,
  type InvalidationSubscriber,
  type Snapshot,
  type SnapshotProvider,
  type StreamStatus,
  type TopicInfo,
  type WriteResult,
} from "@statesync/client";

interface Settings {
  theme: string;
}

// An EventSource of one's own (as in Node) fits EventSourceImpl.
class MyEventSource implements EventSourceLike {
  readyState = 0;
  constructor(readonly url: string) {}
  addEventListener(_type: string, _listener: (event: { readonly data: string }) => void): void {}
  close(): void {
    this.readyState = 2;
  }
}

export async function useEverything(token: string): Promise<string> {
  const opts: ConnectOptions = {
    url: "http://127.0.0.1:8765",
    token,
    inline: 4096,
    emptyData: () => ({}),
    EventSourceImpl: MyEventSource,
  };
  const client: Client = connect(opts);
  connect({ url: "https://sync.example", token });
  connect();
  // The browser's EventSource (lib "dom") fits too.
  connect({ EventSourceImpl: EventSource, emptyData: null });

  const sub: InvalidationSubscriber = client.subscriber("settings");
  const unsubscribe: () => void = await sub.subscribe((ev: InvalidationEvent) => {
    const r: string = ev.revision;
    const e: string | undefined = ev.epoch;
    const s: string | undefined = ev.sourceId;
    const ms: number | undefined = ev.timestampMs;
    void [r, e, s, ms, ev.topic];
  });
  unsubscribe();

  const provider: SnapshotProvider<Settings> = client.provider<Settings>("settings", { emptyData: () => ({ theme: "light" }) });
  const snap: Snapshot<Settings> = await provider.getSnapshot();
  const theme: string | undefined = snap.data?.theme;
  const other = await client.getSnapshot<Settings>("settings", { emptyData: null });

  const f: FollowHandle<Settings> = await client.follow<Settings>("settings", (s) => {
    void s.data?.theme;
  }, {
    onError: (err, phase) => console.error(phase, err),
    shouldRefresh: (ev) => ev.revision !== "0",
  });
  const w: WriteResult = await client.put("settings", { theme: "dark" }, { ifRevision: f.revision(), sourceId: "me" });
  f.offer({ revision: w.revision, epoch: w.epoch, data: { theme: "dark" } });
  await f.refresh();
  const ep: string | undefined = f.epoch();
  f.stop();
  await client.patch("settings", { theme: "blue" }, { ifRevision: null });
  await client.delete("settings");
  const list: TopicInfo[] = await client.topics();
  const unwatch: () => void = await client.watchPrefix<Settings>("cart:", (ev: InvalidationEvent, snap?: Snapshot<Settings>) => {
    void [ev.topic, ev.revision, snap?.data?.theme];
  }, { onError: (err: StateSyncError) => console.error(err.status, err.code) });
  unwatch();
  const stop: () => void = client.onStatus((s: StreamStatus) => {
    if (s === "closed") stop();
  });

  try {
    await client.put("settings", {}, { ifRevision: "1" });
  } catch (e) {
    if (e instanceof StateSyncError && e.conflict) {
      const cur: string | undefined = e.currentRevision;
      const st: number = e.status;
      const code: string | undefined = e.code;
      void [cur, st, code, e.body?.error?.message, e.topic];
    }
  }
  const ok: boolean = isCanonicalRevision(w.revision);
  const cmp: -1 | 0 | 1 = compareRevisions("1", "2");
  client.close();
  return [theme, other.revision, ep, list.length, ok, cmp].join(" ");
}

export function misuses(client: Client): void {
  // @ts-expect-error url is a string
  connect({ url: 8765 });
  // @ts-expect-error inline is a number of bytes
  connect({ inline: "4k" });
  // @ts-expect-error EventSourceImpl is a class, not an instance
  connect({ EventSourceImpl: new MyEventSource("x") });
  // @ts-expect-error no such option
  connect({ tokn: "typo" });
  // @ts-expect-error a revision is a string
  void client.put("t", 1, { ifRevision: 42 });
  // @ts-expect-error follow needs the function that applies snapshots
  void client.follow("t");
  // @ts-expect-error no such status
  client.onStatus((s) => s === "gone");
  // @ts-expect-error a prefix is a string
  void client.watchPrefix(1, () => {});
  // @ts-expect-error watchPrefix needs the handler
  void client.watchPrefix("cart:");
}
