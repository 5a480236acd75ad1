package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/internal/launch"
)

// The banner names the storefront's page in every shipped run file: the
// embedded app's, or the storefront app's of the distributed ones.
func TestTheBannerNamesTheStorefrontsPage(t *testing.T) {
	for _, file := range []string{"dapr-embedded.yaml", "dapr.yaml", "dapr-postgres.yaml", "dapr-smtp.yaml"} {
		f, err := launch.Load("../../deploy/" + file)
		require.NoError(t, err)
		out := bannerText(f)
		assert.Contains(t, out, "storefront http://localhost:8080/\n", file)
		assert.Contains(t, out, "Watch it work: open http://localhost:8080/ in a browser.\n", file)
	}

	f, err := launch.Parse("run.yaml", []byte(`version: 1
apps:
- appID: shop
  appPort: 3000
  daprHTTPPort: 3500
  daprGRPCPort: 50001
  resourcesPath: ../../components/embedded
  command: ["bin/shop"]
`))
	require.NoError(t, err)
	assert.Contains(t, bannerText(f), "storefront http://localhost:8080/", "no FUNCTIONS serves every function, the storefront on its default port")
	f.Common.Env = map[string]string{"STOREFRONT_PORT": "8181", "FUNCTIONS": "order"}
	f.Apps[0].Env = map[string]string{"FUNCTIONS": "storefront"}
	assert.Contains(t, bannerText(f), "storefront http://localhost:8181/", "the common env's port")
	f.Apps[0].Env = map[string]string{"FUNCTIONS": "order"}
	assert.NotContains(t, bannerText(f), "storefront", "no storefront, no page")
}
