// h2load: HTTP/2 load through a forward proxy: CONNECT, TLS with ALPN h2 (certificate not
// verified), then -s concurrent streams multiplexed on -c connections for -d.
//
//	go build -o h2load h2load.go
//	h2load -x 127.0.0.1:8080 -c 1 -s 64 -d 10s https://127.0.0.1:18443/small
//
// Prints one JSON object (requests, rps, MB/s, latency percentiles, errors). Standard library only:
// net/http speaks HTTP/2 over our own dialer when ForceAttemptHTTP2 is set.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	proxy := flag.String("x", "", "host:port of the HTTP proxy (empty: direct)")
	conns := flag.Int("c", 1, "connections")
	streams := flag.Int("s", 64, "concurrent streams in total")
	duration := flag.Duration("d", 10*time.Second, "duration")
	flag.Parse()
	target := flag.Arg(0)

	var dials int64
	newTransport := func() *http.Transport {
		return &http.Transport{
			ForceAttemptHTTP2: true,
			MaxConnsPerHost:   1,
			DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				atomic.AddInt64(&dials, 1)
				dialAddr := addr
				if *proxy != "" {
					dialAddr = *proxy
				}
				c, err := net.DialTimeout("tcp", dialAddr, 10*time.Second)
				if err != nil {
					return nil, err
				}
				if *proxy != "" {
					fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
					br := bufio.NewReader(c)
					resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
					if err != nil || resp.StatusCode != 200 {
						c.Close()
						return nil, fmt.Errorf("CONNECT failed: %v", err)
					}
				}
				tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
				if err := tc.HandshakeContext(ctx); err != nil {
					c.Close()
					return nil, err
				}
				if tc.ConnectionState().NegotiatedProtocol != "h2" {
					tc.Close()
					return nil, fmt.Errorf("ALPN: server chose %q, not h2", tc.ConnectionState().NegotiatedProtocol)
				}
				return tc, nil
			},
		}
	}
	clients := make([]*http.Client, *conns)
	for i := range clients {
		clients[i] = &http.Client{Transport: newTransport(), Timeout: 30 * time.Second}
	}

	var mu sync.Mutex
	var lat []time.Duration
	var requests, bytes, errors int64
	firstErr := ""
	deadline := time.Now().Add(*duration)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *streams; i++ {
		wg.Add(1)
		go func(client *http.Client) {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := client.Get(target)
				if err == nil {
					var n int64
					n, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.ProtoMajor == 2 && resp.StatusCode == 200 {
						atomic.AddInt64(&requests, 1)
						atomic.AddInt64(&bytes, n)
						mine = append(mine, time.Since(t0))
						continue
					}
					if err == nil {
						err = fmt.Errorf("status %d over HTTP/%d", resp.StatusCode, resp.ProtoMajor)
					}
				}
				atomic.AddInt64(&errors, 1)
				mu.Lock()
				if firstErr == "" {
					firstErr = err.Error()
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(clients[i%*conns])
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"requests": requests, "errors": errors, "connects": dials, "first_error": firstErr,
		"rps": float64(requests) / elapsed, "mbps": float64(bytes) / elapsed / 1e6,
		"lat_p50_ms": pct(0.5), "lat_p99_ms": pct(0.99),
	})
}
