package stock_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/inventory"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/stocktest"
	"github.com/daprfn/shop/runtime"
)

// client returns a Client of the inventory next, through a Recorder, closed
// when the test ends.
func client(t *testing.T, next bindings.Invoker, log *slog.Logger) (*stock.Client, *stocktest.Recorder) {
	t.Helper()
	rec := stocktest.NewRecorder(next)
	c := stock.NewClient(rec, stocktest.AppID, log)
	t.Cleanup(c.Close)
	return c, rec
}

func orderID(i int) string { return "order-" + strconv.Itoa(i) }

// taken is what order-0 to order-<n-1> took of product-1.
func taken(n int) []stock.Confirmation {
	out := make([]stock.Confirmation, n)
	for i := range out {
		out[i] = stock.Confirmation{OrderID: orderID(i), ProductID: "product-1"}
	}
	return out
}

// stillHeld confirms order-0 to order-<n-1> at the inventory itself and says
// how many of them still held stock.
func stillHeld(t *testing.T, inv *inventory.Service, n int) int {
	t.Helper()
	c, err := inv.Confirm(context.Background(), stock.ConfirmRequest{Orders: taken(n)})
	require.NoError(t, err)
	return c.Confirmed
}

// takeOrders takes one of product-1 for each of order-0 to order-<n-1>,
// each confirmed once taken when confirm is set.
func takeOrders(t *testing.T, c *stock.Client, n int, confirm bool) {
	t.Helper()
	for i := range n {
		a, err := c.Take(context.Background(), orderID(i), "product-1", 1)
		require.NoError(t, err)
		require.True(t, a.Available)
		if confirm {
			c.Confirm(stock.Taken{OrderID: orderID(i), ProductID: "product-1"})
		}
	}
}

func TestTakesArrivingDuringACallGoTogetherInTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Ours, 100, nil)
		c, rec := client(t, sc, nil)
		rec.Hold()
		results := make(chan error, 10)
		take := func(i int) {
			a, err := c.Take(context.Background(), orderID(i), "product-1", 1)
			if err == nil && !a.Available {
				err = assert.AnError
			}
			results <- err
		}
		go take(0)
		synctest.Wait()
		require.Equal(t, []string{"reserve:1"}, rec.Calls(), "the first take goes at once")
		for i := 1; i < 10; i++ {
			go take(i)
		}
		synctest.Wait()
		require.Equal(t, 9, c.Queued())
		rec.Release()
		for range 10 {
			require.NoError(t, <-results)
		}
		assert.Equal(t, []string{"reserve:1", "reserve:9"}, rec.Calls(), "nine takes queued behind the first call: one call for them")
		assert.Equal(t, 90, stocktest.Left(t, inv))
		assert.Equal(t, 10, stillHeld(t, inv, 10), "every take held its order's stock")
	})
}

func TestTakeFallsBackToTheSeedsCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seed, seedInv := stocktest.Inventory(t, stocktest.Seed, 100, nil)
		var logs daprtest.SyncBuffer
		c, rec := client(t, seed, slog.New(slog.NewTextHandler(&logs, nil)))
		for i := range 2 {
			a, err := c.Take(context.Background(), orderID(i), "product-1", 3)
			require.NoError(t, err)
			assert.True(t, a.Available)
			assert.Equal(t, "Laptop", a.ProductName)
			c.Confirm(stock.Taken{OrderID: orderID(i), ProductID: "product-1"})
		}
		time.Sleep(stock.ConfirmAfter)
		synctest.Wait()
		assert.Equal(t, []string{"reserve:1", "check:1", "check:1", "confirm:2"}, rec.Calls(), "no /reserve: /check per order from then on")
		assert.Equal(t, 94, stocktest.Left(t, seedInv))
		c.Confirm(stock.Taken{OrderID: "order-2", ProductID: "product-1"})
		time.Sleep(stock.ConfirmAfter)
		synctest.Wait()
		assert.Equal(t, []string{"confirm:1"}, rec.Calls()[4:], "confirmations keep going to the seed's inventory")

		// Ours back in the seed's place: its /check holds the stock, and the
		// confirmations that kept going reach it.
		ours, ourInv := stocktest.Inventory(t, stocktest.Ours, 100, nil)
		rec.Route(ours)
		_, err := c.Take(context.Background(), "order-0", "product-1", 1)
		require.NoError(t, err)
		c.Confirm(stock.Taken{OrderID: "order-0", ProductID: "product-1"})
		c.Close()
		assert.Equal(t, []string{"check:1", "confirm:1"}, rec.Calls()[5:])
		assert.Zero(t, stillHeld(t, ourInv, 1), "the hold our /check made was confirmed")
		assert.Equal(t, 1, strings.Count(logs.String(), "has no POST /reserve"), "logged once")
		assert.Equal(t, 1, strings.Count(logs.String(), "has no POST /confirm"), "the seed's 404 for /confirm is logged once")
		assert.NotContains(t, logs.String(), "hold sweep", "no hold sweep is promised where there are no holds")
	})
}

func TestTakeOfAnUnknownProductIsNotFound(t *testing.T) {
	for name, routes := range map[string]stocktest.Routes{"ours": stocktest.Ours, "the seed's": stocktest.Seed} {
		synctest.Test(t, func(t *testing.T) {
			sc, _ := stocktest.Inventory(t, routes, 100, nil)
			c, _ := client(t, sc, nil)
			_, err := c.Take(context.Background(), "order-1", "product-9", 1)
			e := runtime.Classify(err)
			assert.Equal(t, 404, e.Status, name)
			assert.Equal(t, "product_not_found", e.Code, name)

			a, err := c.Take(context.Background(), "order-2", "product-1", 101)
			require.NoError(t, err, name)
			assert.False(t, a.Available, "%s: not enough stock is an answer, not an error", name)
		})
	}
}

func TestATakerThatGaveUpTakesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Ours, 100, nil)
		c, rec := client(t, sc, nil)
		rec.Hold()
		first := make(chan error, 1)
		go func() { _, err := c.Take(context.Background(), "order-1", "product-1", 1); first <- err }()
		synctest.Wait()

		ctx, cancel := context.WithCancel(context.Background())
		gaveUp := make(chan error, 1)
		go func() { _, err := c.Take(ctx, "order-2", "product-1", 1); gaveUp <- err }()
		synctest.Wait()
		require.Equal(t, 1, c.Queued())
		cancel()
		err := <-gaveUp
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "waiting for the inventory")
		rec.Release()
		require.NoError(t, <-first)
		assert.Equal(t, []string{"reserve:1"}, rec.Calls(), "the cancelled take was never sent")
		assert.Equal(t, 99, stocktest.Left(t, inv))
	})
}

func TestATakeWhoseCallIsInFlightLearnsItsOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Ours, 100, nil)
		c, rec := client(t, sc, nil)
		rec.Hold()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.Take(ctx, "order-1", "product-1", 1); done <- err }()
		synctest.Wait()
		cancel()
		synctest.Wait()
		rec.Release()
		require.NoError(t, <-done, "the take was sent: its caller learns that it took stock")
		assert.Equal(t, 1, stillHeld(t, inv, 2), "order-1's hold")
	})
}

func TestConfirmationsRideWithTheNextReserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Ours, 100, nil)
		c, rec := client(t, sc, nil)
		takeOrders(t, c, 3, true)
		assert.Equal(t, []string{"reserve:1", "reserve:1+confirm:1", "reserve:1+confirm:1"}, rec.Calls(),
			"each stored order's confirmation went with the next take, in no call of its own")
		assert.Equal(t, 1, stillHeld(t, inv, 3), "only the last order's hold was still there")
		assert.Equal(t, 97, stocktest.Left(t, inv))
	})
}

func TestConfirmationsNoTakeCarriesGoOnTheirOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Ours, 100, nil)
		c, rec := client(t, sc, nil)
		takeOrders(t, c, 2, false)
		c.Confirm(stock.Taken{OrderID: "order-0", ProductID: "product-1"})
		c.Confirm(stock.Taken{OrderID: "order-1", ProductID: "product-1"})
		time.Sleep(stock.ConfirmAfter - time.Nanosecond)
		synctest.Wait()
		assert.Len(t, rec.Calls(), 2, "they wait ConfirmAfter for a take to carry them")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, []string{"reserve:1", "reserve:1", "confirm:2"}, rec.Calls(), "both in one /confirm once they waited ConfirmAfter")
		assert.Zero(t, stillHeld(t, inv, 2), "both holds were already final")
	})
}

func TestCloseSendsTheConfirmationsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc, inv := stocktest.Inventory(t, stocktest.Ours, 100, nil)
		c, rec := client(t, sc, nil)
		takeOrders(t, c, 1, true)
		start := time.Now()
		c.Close()
		assert.Zero(t, time.Since(start), "without waiting ConfirmAfter")
		assert.Equal(t, []string{"reserve:1", "confirm:1"}, rec.Calls())
		assert.Zero(t, stillHeld(t, inv, 1))
	})
}

func TestConfirmationsOfAFailedReserveAreSentAgainUnlessRefused(t *testing.T) {
	for status, sentAgain := range map[int]bool{503: true, 400: false} {
		synctest.Test(t, func(t *testing.T) {
			sc, inv := stocktest.Inventory(t, stocktest.Ours, 100, nil)
			flaky := &stocktest.Failing{Next: sc}
			c := stock.NewClient(flaky, stocktest.AppID, nil)
			takeOrders(t, c, 1, true)
			flaky.Fail(status)
			_, err := c.Take(context.Background(), "order-1", "product-1", 1)
			require.Error(t, err)
			flaky.Fail(0)
			c.Close() // sends what is queued
			if sentAgain {
				assert.Zero(t, stillHeld(t, inv, 1), "the confirmation the failed call carried was sent again")
			} else {
				assert.Equal(t, 1, stillHeld(t, inv, 1), "a refused call's confirmation is left to the hold sweep, not sent to be refused again")
			}
		})
	}
}
