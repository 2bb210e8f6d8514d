// Command devop runs the test OpenID provider on your machine, to try
// "Sign in with your identity provider" (README) without a real one:
//
//	go run ./internal/testutil/oidcop/devop
//
// It listens on 127.0.0.1:9998 (or -listen) with the users alice (group
// finance) and bob (group eng), a public client "ostiary-cli" for
// 'ostiary login' and MCP hosts (redirects to http://127.0.0.1/callback on
// any port), and a service client "ci-bot" (secret "ci-bot-secret", group
// automation) for the client-credentials grant. Its login page asks no
// password: it is for trying things out, never for real use.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/ostiary/ostiary/internal/testutil/oidcop"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9998", "loopback address to listen on")
	flag.Parse()
	p, err := oidcop.Serve(oidcop.Config{
		Users: []oidcop.User{{ID: "u-alice", Username: "alice", Groups: []string{"finance"}}, {ID: "u-bob", Username: "bob", Groups: []string{"eng"}}},
		Clients: []oidcop.Client{{ID: "ostiary-cli", RedirectURIs: []string{"http://127.0.0.1/callback"}},
			{ID: "ci-bot", Secret: "ci-bot-secret", Groups: []string{"automation"}}},
	}, *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devop:", err)
		os.Exit(1)
	}
	defer p.Close()
	fmt.Printf("test OpenID provider at %s (Ctrl-C stops it)\n", p.URL)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	<-stop
}
