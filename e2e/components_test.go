package e2e

import (
	"fmt"
	"strings"
)

// redisComponents returns the state stores and pub/sub on the private redis.
func redisComponents(redisAddr string) map[string]string {
	state := func(name string) string {
		return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: %s
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: %s
`, name, redisAddr)
	}
	return map[string]string{
		"statestore.yaml":         state("statestore"),
		"notification-state.yaml": state("notification-state"),
		"pubsub.yaml": fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: %s
  - name: concurrency
    value: "100"
  # Redeliver what a subscriber took and never acknowledged (it died) soon.
  - name: redeliverInterval
    value: 1s
  - name: processingTimeout
    value: 5s
`, redisAddr),
	}
}

func cronComponent(name, schedule string) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: %s
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: "%s"
  - name: direction
    value: input
`, name, schedule)
}

func localstorageComponent(name, dir string) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: %s
spec:
  type: bindings.localstorage
  version: v1
  metadata:
  - name: rootPath
    value: %s
`, name, dir)
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
