package e2e

import (
	"strings"

	"github.com/daprfn/shop/internal/daprtest"
)

// redisComponents returns the state stores and pub/sub on the private redis.
func redisComponents(redisAddr string) map[string]string {
	return map[string]string{
		"statestore.yaml":         daprtest.Component("statestore", "state.redis", "redisHost", redisAddr),
		"notification-state.yaml": daprtest.Component("notification-state", "state.redis", "redisHost", redisAddr),
		// Redeliver what a subscriber took and never acknowledged (it died) soon.
		"pubsub.yaml": daprtest.Component("pubsub", "pubsub.redis", "redisHost", redisAddr, "concurrency", "100",
			"redeliverInterval", "1s", "processingTimeout", "5s"),
	}
}

func cronComponent(name, schedule string) string {
	return daprtest.Component(name, "bindings.cron", "schedule", schedule, "direction", "input")
}

func localstorageComponent(name, dir string) string {
	return daprtest.Component(name, "bindings.localstorage", "rootPath", dir)
}

// inboundRetry retries RETRY answers of pubsub quickly, as Dapr documents for
// resiliency policies on pub/sub inbound.
func inboundRetry(pubsub string) string {
	return strings.ReplaceAll(`apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: e2e-resiliency
spec:
  policies:
    retries:
      fastRetry:
        policy: constant
        duration: 200ms
        maxRetries: 10
  targets:
    components:
      PUBSUB:
        inbound:
          retry: fastRetry
`, "PUBSUB", pubsub)
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
