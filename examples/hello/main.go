// Command hello is a function app in one file: POST /hello answers a
// greeting, and a request without a name gets a JSON 400.
//
//	make examples && bin/shop run -f examples/hello/dapr.yaml
//	curl -X POST http://localhost:3610/v1.0/invoke/hello/method/hello \
//	  -H "Content-Type: application/json" -d '{"name": "Ada"}'
package main

import (
	"context"

	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/host"
)

// Greeting is the input of POST /hello.
type Greeting struct {
	Name string `json:"name"`
}

// Validate implements runtime.Validator.
func (g Greeting) Validate() error {
	if g.Name == "" {
		return runtime.Invalid("invalid_name", "name is required")
	}
	return nil
}

// Hello answers POST /hello.
func Hello(_ context.Context, in Greeting) (string, error) { return "Hello, " + in.Name, nil }

func main() {
	host.Main(func(h *host.Host) error {
		runtime.Invoke(h.App, "POST /hello", Hello)
		return nil
	})
}
