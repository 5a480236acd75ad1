// Package daprtest starts real daprd processes (and a private redis-server)
// for end-to-end tests, the way Dapr's own integration tests do: free ports,
// a temporary resources directory, a wait for /v1.0/healthz, and a clean
// stop of the whole process group when the test ends, failed or not.
package daprtest
