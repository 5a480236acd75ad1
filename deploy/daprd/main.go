// Command daprd is the Dapr sidecar pinned by this project: upstream daprd
// built with -tags stablecomponents plus the SMTP output binding, which the
// stable set leaves out and the notification function can send mail through
// (one mailer per send: smtp.go says why).
package main

import (
	"github.com/dapr/dapr/cmd/daprd/app"
	bindingsLoader "github.com/dapr/dapr/pkg/components/bindings"
)

func main() {
	bindingsLoader.DefaultRegistry.RegisterOutputBinding(newPerCallSMTP, "smtp")
	app.Run()
}
