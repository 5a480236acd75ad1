package batch_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/daprfn/shop/runtime/batch"
)

// A group commit of stock takes, carrying the confirmations queued since.
// Takes wait for their answer (Do); confirmations are queued (Add) and ride
// along with the next take (Take), or go on their own after a linger.
func Example() {
	confirms := batch.New(batch.Options{Linger: time.Minute}, func(calls []*batch.Call[string, struct{}]) {
		ids := make([]string, len(calls))
		for i, c := range calls {
			ids[i] = c.In
		}
		fmt.Println("POST /confirm", strings.Join(ids, " "))
	})
	takes := batch.New(batch.Options{Max: 1000}, func(calls []*batch.Call[string, bool]) {
		carried := confirms.Take(1000)
		fmt.Println("POST /reserve for", len(calls), "orders, confirming", carried)
		for _, c := range calls {
			c.Answer(true, nil)
		}
	})
	defer takes.Close()

	ok, err := takes.Do(context.Background(), "order-1")
	fmt.Println(ok, err)
	confirms.Add("order-1")
	_, _ = takes.Do(context.Background(), "order-2")
	confirms.Add("order-2")
	confirms.Close() // sends what no take carried, without lingering
	// Output:
	// POST /reserve for 1 orders, confirming []
	// true <nil>
	// POST /reserve for 1 orders, confirming [order-1]
	// POST /confirm order-2
}
