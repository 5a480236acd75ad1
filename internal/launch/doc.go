// Package launch runs a Dapr multi-app run file (dapr.yaml, the format of
// `dapr run -f`) with the pinned daprd, since the dapr CLI is not available:
// every app is started with its own daprd, every log line is prefixed with
// the app-id, the launcher waits until every sidecar is healthy, prints the
// endpoints, and on Ctrl-C or SIGTERM stops the apps first (they drain), then
// their sidecars, leaving no process behind.
package launch
