package e2e

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/daprtest"
)

// copyRepository copies the repository's sources (not bin/, data/, .git or
// benchmark output) into a temporary directory.
func copyRepository(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	src, err := filepath.Abs("..")
	require.NoError(t, err)
	require.NoError(t, filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			switch {
			case rel == ".git", rel == "bin", rel == "data", rel == "bench/out", d.Name() == "node_modules":
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(root, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, rel), raw, 0o644)
	}))
	// The built tools (daprd, kube-apiserver) as they are: the copy's tests
	// use them where the repository's do.
	require.NoError(t, os.Symlink(filepath.Join(src, "bin"), filepath.Join(root, "bin")))
	return root
}

// inDir runs a command in dir and returns its output; a failure fails the
// test with that output.
func inDir(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// shippingGot reports whether the generated shipping function logged the
// event of order id.
func shippingGot(out, id string) bool {
	return regexp.MustCompile(`msg="shipping: event on pubsub/orders".* event=` + regexp.QuoteMeta(id) + `\b`).MatchString(out)
}

// A new function in three steps: shop new writes it, it builds and its
// generated tests pass as written, and it runs on real daprd beside the
// shop: in its own app next to the seed's three, and inside the embedded
// app, where it and the notification both get every order event.
func TestShopNewFunctionsRunOnRealDaprd(t *testing.T) {
	root := copyRepository(t)
	inDir(t, root, nil, shopBinary, "new", "shipping", "--topic", "pubsub/orders", "--cron", "@every 2s")
	inDir(t, root, nil, shopBinary, "new", "quote", "--invoke", "POST /quote")
	out, err := exec.Command(shopBinary, "new", "quote", "--invoke", "POST /quote", "-C", root).CombinedOutput()
	require.Error(t, err, "a second quote is refused")
	assert.Contains(t, string(out), "nothing was written")

	inDir(t, root, nil, "go", "vet", "./functions/...", "./cmd/...")
	inDir(t, root, nil, "go", "test", "-count=1", "./functions/shipping/", "./functions/quote/", "./cmd/shop/", "./deploy/", "./docs/")
	bin := filepath.Join(t.TempDir(), "shop")
	inDir(t, root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", bin, "./cmd/shop")

	t.Run("each its own app beside the seed's three", func(t *testing.T) {
		redis := daprtest.StartRedis(t)
		s := launchTopology(t, root, bin, redis.Addr, nil, nil)
		status, body := post(t, s.url("order", "/v1.0/invoke/"+s.ids["order"]+"/method/orders"), `{"productId": "product-1", "quantity": 2, "customerEmail": "customer@example.com"}`)
		require.Equal(t, http.StatusOK, status, body)
		id := decodeOrderID(t, body)
		require.Eventually(t, func() bool { return shippingGot(s.out.String(), id) }, 20*time.Second, 100*time.Millisecond, "the order reaches shipping")
		require.Eventually(t, func() bool {
			_, err := os.Stat(filepath.Join(s.emailDir, id+".eml"))
			return err == nil
		}, 20*time.Second, 100*time.Millisecond, "and the notification still emails it")
		require.Eventually(t, func() bool { return strings.Contains(s.out.String(), "shipping: shipping-cron fired") }, 20*time.Second, 100*time.Millisecond, "the cron fires")

		status, body = post(t, s.url("quote", "/v1.0/invoke/"+s.ids["quote"]+"/method/quote"), `{"id": "q-1"}`)
		assert.Equal(t, http.StatusOK, status, body)
		assert.JSONEq(t, `{"status": "received"}`, body)
		status, body = post(t, s.url("quote", "/v1.0/invoke/"+s.ids["quote"]+"/method/quote"), `{}`)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Contains(t, body, `"code":"invalid_id"`)
		s.stop(t)
	})

	t.Run("inside the embedded app", func(t *testing.T) {
		r := launchEmbeddedAt(t, root, bin, nil, nil)
		ids := []string{r.placeOrder(t, 1), r.placeOrder(t, 1)}
		for _, id := range ids {
			require.Eventually(t, func() bool { return r.hasEmail(id) }, 20*time.Second, 100*time.Millisecond, "the notification emails %s", id)
			require.Eventually(t, func() bool { return shippingGot(r.out.String(), id) }, 20*time.Second, 100*time.Millisecond, "shipping gets %s", id)
		}
		assert.Equal(t, 2, strings.Count(r.out.String(), "shipping: event on pubsub/orders"), fmt.Sprintf("once per order:\n%s", r.out.String()))
		r.stop(t)
	})
}
