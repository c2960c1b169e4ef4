# syntax=docker/dockerfile:1
# The statesync daemon in a small image: a static binary (CGO_ENABLED=0,
# the same build .ci/run checks), run as a non-root user, its bbolt store
# in the /data volume, healthy while /livez answers 200.
#
#   docker build -t statesync .
#   docker run -p 8765:8765 -v statesync-data:/data \
#     -v "$PWD/tokens:/etc/statesync/tokens:ro" statesync \
#     serve --addr 0.0.0.0:8765 --data /data --tokens /etc/statesync/tokens
#
# The daemon refuses a non-loopback address without --tokens: pass a token
# file (above) or, on a network you trust, --insecure. See README.md,
# "Deployment".

FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/statesync ./cmd/statesync

FROM alpine:3.22
# busybox wget runs the health check; the daemon runs as statesync (uid 10001).
RUN addgroup -S -g 10001 statesync && adduser -S -D -H -u 10001 -G statesync statesync \
  && mkdir /data && chown statesync:statesync /data
COPY --from=build /out/statesync /usr/local/bin/statesync
USER statesync:statesync
VOLUME /data
EXPOSE 8765
# /livez is exempt from the Host check, needs no token and never reads the
# store: an orchestrator that restarts unhealthy containers does not restart
# every daemon while a shared database is down (/readyz says that).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD wget -q -O /dev/null http://127.0.0.1:8765/livez || exit 1
ENTRYPOINT ["/usr/local/bin/statesync"]
CMD ["serve", "--addr", "0.0.0.0:8765", "--data", "/data"]
