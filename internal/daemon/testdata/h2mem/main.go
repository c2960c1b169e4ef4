// Command h2mem measures the server memory of event streams: it opens -n
// streams to a running daemon (HTTP/2 over TLS, or HTTP/1.1 with -h1, where
// the daemon hijacks each stream's connection) and prints the growth of the
// daemon's heap, stacks and resident memory per stream, read from its
// /metrics (no forced GC: run it with a few thousand streams, twice). See
// "TLS and HTTP/2" in the README for the figures and the commands.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func metrics(hc *http.Client, base string) map[string]float64 {
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			v, _ := strconv.ParseFloat(f[1], 64)
			m[f[0]] = v
		}
	}
	return m
}

func main() {
	base := flag.String("url", "https://127.0.0.1:8765", "the daemon's URL")
	n := flag.Int("n", 2000, "streams")
	h1 := flag.Bool("h1", false, "HTTP/1.1 only")
	flag.Parse()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: !*h1, MaxConnsPerHost: 0, MaxIdleConnsPerHost: 10000}
	if *h1 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	hc := &http.Client{Transport: tr}
	mc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	metrics(mc, *base)
	time.Sleep(2 * time.Second)
	m0 := metrics(mc, *base)
	var wg sync.WaitGroup
	proto := make(chan string, 1)
	sem := make(chan struct{}, 100)
	for i := range *n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			resp, err := hc.Get(fmt.Sprintf("%s/v1/events?topic=t%d", *base, i))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			select {
			case proto <- resp.Proto:
			default:
			}
			br := bufio.NewReader(resp.Body)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				if strings.HasPrefix(l, "data:") {
					break
				}
			}
			<-sem
			// keep the stream open: the body is never closed
			go func() { _, _ = br.ReadString(0) }()
		}()
	}
	wg.Wait()
	time.Sleep(3 * time.Second)
	m1 := metrics(mc, *base)
	k := float64(*n)
	fmt.Printf("%s, %d streams (server: %v open, %v connections): per stream heap_inuse %.0f B, stack_inuse %.0f B, heap+stack %.0f B, RSS %.0f B, goroutines %.2f\n",
		<-proto, *n, m1["statesync_streams_open"], m1["statesync_connections_open"],
		(m1["go_memstats_heap_inuse_bytes"]-m0["go_memstats_heap_inuse_bytes"])/k,
		(m1["go_memstats_stack_inuse_bytes"]-m0["go_memstats_stack_inuse_bytes"])/k,
		(m1["go_memstats_heap_inuse_bytes"]+m1["go_memstats_stack_inuse_bytes"]-m0["go_memstats_heap_inuse_bytes"]-m0["go_memstats_stack_inuse_bytes"])/k,
		(m1["process_resident_memory_bytes"]-m0["process_resident_memory_bytes"])/k,
		(m1["go_goroutines"]-m0["go_goroutines"])/k)
}
