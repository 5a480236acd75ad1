package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPagesHoldStreamsOpenAndCountOrderSteps(t *testing.T) {
	sent := make(chan struct{}, 5)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 2000\n\nevent: stock\ndata: {}\n\n")
		for i := range 3 {
			fmt.Fprintf(w, "id: x-%d\nevent: order\ndata: {}\n\n", i)
		}
		w.(http.Flusher).Flush()
		sent <- struct{}{}
		<-r.Context().Done() // held open until the page closes
	}))
	defer page.Close()
	p, err := openPages(context.Background(), page.URL+"/", 5)
	require.NoError(t, err)
	for range 5 {
		<-sent
	}
	require.Eventually(t, func() bool {
		for i := range p.events {
			if p.events[i].Load() < 3 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "every page reads what was sent")
	fewest, failed := p.close()
	assert.EqualValues(t, 3, fewest, "every page got the three order steps")
	assert.Zero(t, failed)

	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer refused.Close()
	_, err = openPages(context.Background(), refused.URL+"/", 2)
	assert.ErrorContains(t, err, "503", "a refused page fails the run")
}
