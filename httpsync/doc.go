// Package httpsync is the HTTP transport of statesync: a server [Handler]
// that serves a [statesync.Source] over HTTP (snapshots, writes and an
// event stream of invalidations), and a Go [Client] that is a
// [statesync.Subscriber], a [statesync.Provider] and a writer. The browser
// module web/statesync.js speaks the same protocol. It uses only the
// standard library.
//
// # Routes
//
// Errors are JSON, {"error":{"code":…,"message":…}}, with the codes of the
// Code* constants.
//
//	GET    /v1/topics/{topic}   200 {"revision":"42","epoch":"…","data":…}; a topic never
//	                            written is {"revision":"0","epoch":"…","data":null}.
//	                            ETag "<epoch>.<revision>"; If-None-Match → 304; gzip
//	                            when accepted (built once per revision).
//	GET    /v1/topics/{topic}?minRevision=N[&epoch=E]
//	                            the same, at least revision N (of epoch E): see
//	                            "Reading at least a revision" below.
//	PUT    /v1/topics/{topic}   body: the new data (JSON). 200 {"revision":"43","epoch":"…"}
//	                            and the new ETag.
//	PATCH  /v1/topics/{topic}   body: a JSON merge patch (RFC 7396, Content-Type
//	                            application/merge-patch+json), applied atomically.
//	                            200 {"revision":"43","epoch":"…","data":<the result>};
//	                            "data" only if the token may also read the topic.
//	                            A patch that changes nothing writes nothing: 200
//	                            with the current revision, epoch and ETag (If-Match
//	                            is still checked: 412 on a mismatch).
//	DELETE /v1/topics/{topic}   data becomes null at a new revision. 200 as PUT.
//	GET    /v1/topics           200 {"topics":[{"topic":…,"revision":…,"epoch":…}]},
//	                            the topics the caller may read (for a token of
//	                            [Tokens], read by its grants: the topics it names
//	                            and, on a [statesync.PrefixLister] store, the
//	                            ranges of its prefixes, not every topic).
//	GET    /v1/events?topic=a&topic=b[&prefix=c:][&inline=N]
//	                            text/event-stream, see below and "Watching a
//	                            prefix".
//
// A topic name is any UTF-8 without control characters
// ([statesync.CheckTopic]), so {topic} is one escaped path segment: the
// [Client] escapes it with [net/url.PathEscape] ("settings/ui" is
// /v1/topics/settings%2Fui, "my topic" my%20topic, "100%" 100%25), and the
// handler takes the decoded path after /v1/topics/ as the name (an
// unescaped '/' is part of it, but dot segments of an unescaped path are
// removed by URL parsers and by [net/http.ServeMux]: escape '/'). In the
// query, topic=… is form-encoded ([net/url.QueryEscape]: '+' is %2B, a
// space '+'). In frames, lists and errors a name is a JSON string.
//
// Writes take an optional If-Match header naming the revision the topic
// must be at, "<revision>" or the ETag form "<epoch>.<revision>" (quoted,
// one tag; "*" means no condition). Another revision or epoch is refused
// with 412 and a body carrying the current revision and epoch:
//
//	{"error":{"code":"conflict","message":"…","topic":"settings","revision":"42","epoch":"…","expected":"41"}}
//
// An X-Source-Id header names the writer in the write's invalidation, so
// that consumers can skip the echo of their own writes. Under
// [HandlerOptions.Auth] it must be the token's name or start with the name
// followed by "/" ("worker", "worker/1" for the token "worker"; see
// [NamedGrants]), else 403: no writer can pose as another. A token without
// a name may send none; without auth any is taken.
//
// # Reading at least a revision
//
// Several daemons on one shared store each learn of changes from the
// store's feed, some later than others. A client that learned of revision
// N (from an invalidation, or from its own write's response) and whose GET
// lands on another daemon behind a load balancer asks for at least N:
// minRevision=N, and epoch=E, the epoch N belongs to. The handler passes
// them to the source with [statesync.WithMinRevision]: a [statesync.Source]
// whose memory is older reads through to its store (one read per topic and
// revision, whatever the number of such requests), so the answer is never
// older than N in epoch E unless the store itself has nothing newer (then
// it is the store's latest, or another epoch's). N is a canonical decimal
// revision and E 1 to 256 visible ASCII characters other than '"';
// anything else, or a parameter given twice, or epoch without minRevision,
// is refused with 400 invalid_parameter. minRevision=0 asks nothing. The
// ETag and If-None-Match work as without it. [Client] sends them from the
// context of [Client.Snapshot] ([statesync.MinRevision], which the engine
// sets from the invalidation it acts on) and from its own writes of the
// topic; web/statesync.js from the newest revision it was told of.
//
// Bodies over [HandlerOptions.MaxBody] are refused with 413. Bodies must be
// JSON in UTF-8 (RFC 8259: invalid UTF-8 inside strings is refused too),
// nested at most [HandlerOptions.MaxDepth] deep (256 by default; checked in
// one pass before anything parses the body), else 400 invalid_json. A
// merge patch costs time linear in the sizes of the patch and the data,
// however deep. A write is stored whole or not at all.
//
// Statuses: 400 (invalid topic, JSON, If-Match or parameter), 401 (no or
// unknown token), 403 (topic outside the token's grants, or an X-Source-Id
// not the token's), 404 (unknown route), 405, 408 (the body did not arrive
// within [HandlerOptions.ReadTimeout]), 409 (a PATCH that kept losing its
// compare-and-set), 412, 413, 415 (a PATCH that is not a merge patch), 429
// (the token has [HandlerOptions.MaxStreamsPerToken] streams open), 500
// (the store failed) and 503 (the handler or the source is closed).
//
// A request refused before its body is read (400, 401, 403, 404, 405, 415, and 408
// and 413 while reading it) is answered at once with "Connection: close":
// net/http closes the connection instead of reading the rest of the body,
// so that a client announcing a body it never sends cannot hold the
// connection. Bodies are read under the deadline of
// [HandlerOptions.ReadTimeout]; event streams never have a read deadline.
// Cap the connections themselves at the listener, as the daemon does.
//
// # Event stream
//
// A stream follows the topics named in its query. It starts with a retry
// hint and one frame per topic carrying the topic's current revision, so
// that a client that reconnects needs no history and misses nothing, then
// sends a frame whenever a topic changes:
//
//	retry: 2000
//
//	event: invalidation
//	data: {"topic":"settings","revision":"42","epoch":"k7Qx…","sourceId":"w1","timestampMs":1764000000000}
//
//	: heartbeat
//
// With inline=N, a snapshot of at most N bytes (its JSON encoding) travels
// in the frame instead, saving the client a GET:
//
//	event: snapshot
//	data: {"topic":"settings","revision":"42","epoch":"k7Qx…","data":{"theme":"dark"}}
//
// A stream holds at most one pending revision per topic: while a client
// reads slowly, newer revisions replace older ones, so memory per stream
// stays bounded by its number of topics and a slow reader catches up on
// the latest state. An inline frame is built once per revision and
// written by every stream that sends it from the same bytes, so a
// stalled stream holds no copy of the data of its own (500 streams that
// never read, on a 900 KB topic: 5 MB of server heap, not 600-900 MB). A
// stream whose buffered bytes (what the connection has not accepted
// yet, plus the inline snapshots pending behind it) stay over
// [HandlerOptions.MaxStreamBuffer] (1 MiB) for 5 s is disconnected and
// counted in [Stats].SlowDisconnects; its client reconnects and gets the
// current state. Heartbeat comments (every [HandlerOptions.Heartbeat])
// keep proxies from closing idle streams.
//
// A stream served the standard way holds net/http's per-request state
// for as long as it lasts: about 29 KB of server memory per stream
// (buffers, request, context and two goroutines; measured with 10,000
// streams). With [HandlerOptions.HijackStreams], an HTTP/1.x stream takes
// its connection over once it is accepted and keeps only its own state, a
// writer goroutine and a reader goroutine that notices at once when the
// client leaves: about 11 KB per stream, and a third less server CPU per
// frame (no chunked encoding). The daemon serves streams this way. An
// HTTP/2 stream shares its connection and cannot be hijacked: it is served
// the standard way (about 21 KB of heap and stacks per stream over TLS,
// against about 23 KB for a hijacked HTTP/1.1 stream over TLS, whose
// connection holds TLS buffers of its own; see the README). A hijacked
// stream over TLS writes through the *tls.Conn.
//
// # Watching a prefix
//
// GET /v1/events?prefix=cart: follows every topic whose name starts with
// "cart:" that the token may read: the current revision of each written
// one, then every write to one, topics created after the stream opened
// (or written through another daemon on a shared store) included. Grants
// filter topic by topic: a prefix wider than them is not refused, and a
// topic the token may not read is never sent, not even its name. prefix
// may be repeated (64 distinct at most) and combined with topic; ""
// means every topic. A non-empty prefix must begin a valid topic name,
// else 400 invalid_parameter. A stream follows at most
// [HandlerOptions.MaxPrefixTopics] topics: more when it opens is 400
// [CodeTooManyTopics]; more later ends it with a refused frame
// {"prefix","code","message"}. [Client.SubscribePrefix] is the client
// side.
//
// # Auth
//
// [HandlerOptions.Auth] authenticates requests; [Tokens] is the
// implementation for bearer tokens from a token file ([TokenFile]), sent
// in the Authorization header or, on the event stream only (browsers'
// EventSource cannot set headers), the access_token query parameter; a
// query token on another route is refused with 401, since URLs end up in
// proxy logs. Requests for topics outside a token's grants are refused
// with 403, and lists leave them out. A stream naming such a topic, or an
// invalid one, refuses that topic alone: it sends an "event: refused" frame
// {"topic","code","message"} (codes [CodeForbidden], [CodeInvalidTopic])
// after the retry hint, before the initial frames, and follows the others;
// if none is left, it ends after the refused frames. Each token of a
// [Tokens] holds at most [HandlerOptions.MaxStreamsPerToken] event streams
// at once. Grants are checked when a stream opens; when the tokens change
// (a token file loaded again), [Handler.Regrant] with [Tokens.Regrant]
// closes the streams whose token is gone or may no longer read one of
// their topics, and keeps the others.
//
// # Client
//
// A [Client] follows every topic subscribed to over one event stream,
// reopened (after a short debounce) when the set of topics changes and,
// after a failure, with full-jitter exponential backoff; a stream that a
// server shutting down ended with a retry field of its own is reopened
// after that delay (see [HandlerOptions].ReconnectRate), and refused
// connections are then retried every 250 to 500 ms for 5 s before the
// backoff takes over. Subscribe returns
// once the server has taken the topic in (or the attempt failed), so a
// consumer's Start neither misses a write nor hangs on a dead server; the
// stream's first frames after each (re)connection bring every consumer up
// to date. Its Snapshot
// makes conditional GETs and returns inline snapshots without a request.
// Its writes return snapshots that can be offered to a consumer
// ([statesync.Consumer.Offer]) so that the writer's own consumer does not
// pull its write again.
//
// # Caveats
//
// The Handler answers the full paths above: mount it at "/v1/" without
// stripping the prefix. Call [Handler.Shutdown] before
// http.Server.Shutdown, which otherwise waits for event streams that never
// go idle; with HijackStreams, http.Server.Shutdown and Close do not see
// the streams at all, and only Handler.Shutdown (or Close) ends them. A
// topic of a Client that the server refuses (outside the token's grants,
// or an invalid name) fails only its own Subscribe, with a non-retryable
// *[StatusError]; the other topics of the Client keep flowing. If the
// server refuses a topic only after a reconnection (its grants were
// revoked), the Client logs it at warn level and stops following it: its
// consumers are not told, and stay at the last revision they applied.
package httpsync
