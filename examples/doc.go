// Package examples holds small, complete function apps on the runtime, each
// in its own directory with the dapr.yaml that `bin/shop run -f` starts:
//
//	hello   an invoked function: POST /hello answers a greeting
//	ticker  a cron input binding that publishes a tick, and the topic
//	        subscriber that counts them (GET /count)
//
// Each main is one call to host.Main. `make examples` builds them into
// bin/examples/; `make test` builds and runs them (e2e/examples_test.go).
package examples
