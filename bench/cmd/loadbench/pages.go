package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pages are server-sent-event clients of the storefront's page held open
// during a load, as that many open browser tabs would be (-sse).
type pages struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events []atomic.Int64 // order steps each page received
	failed atomic.Int64   // pages whose stream did not open or broke
}

// openPages connects n clients to the page's /events and reads their
// streams until close; it returns once every stream answered.
func openPages(ctx context.Context, pageURL string, n int) (*pages, error) {
	ctx, cancel := context.WithCancel(ctx)
	p := &pages{cancel: cancel, events: make([]atomic.Int64, n)}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	opened := make(chan error, n)
	for i := range n {
		p.wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, "GET", pageURL+"events", nil)
			if err != nil {
				opened <- err
				return
			}
			resp, err := client.Do(req)
			if err == nil && resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				err = fmt.Errorf("GET %sevents: %s", pageURL, resp.Status)
			}
			opened <- err
			if err != nil {
				p.failed.Add(1)
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "event: order") {
					p.events[i].Add(1)
				}
			}
			if ctx.Err() == nil {
				p.failed.Add(1) // the storefront ended the stream during the load
			}
		})
	}
	timeout := time.After(30 * time.Second)
	for range n {
		select {
		case err := <-opened:
			if err != nil {
				p.close()
				return nil, fmt.Errorf("-sse: %w", err)
			}
		case <-timeout:
			p.close()
			return nil, fmt.Errorf("-sse: %d pages did not open within 30s", n)
		}
	}
	return p, nil
}

// close ends every stream and reports how many order steps the page that
// got the fewest received, and how many streams failed.
func (p *pages) close() (fewest int64, failed int64) {
	p.cancel()
	p.wg.Wait()
	fewest = -1
	for i := range p.events {
		if n := p.events[i].Load(); fewest < 0 || n < fewest {
			fewest = n
		}
	}
	return max(fewest, 0), p.failed.Load()
}
