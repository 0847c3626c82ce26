// go-fetch: GET one URL with Go's net/http, using the proxy from the environment
// (http.ProxyFromEnvironment: HTTP_PROXY, HTTPS_PROXY, NO_PROXY) and the system trust store,
// which SSL_CERT_FILE replaces. Prints "status <code>" on stderr and the body on stdout; exits
// 0 on a response (any status) and 1 on a transport error, printed as "error: ...".
//
// Note: ProxyFromEnvironment never proxies requests to localhost or loopback IPs, so tests must
// name the target (www.example.test) and let the proxy resolve it.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-fetch URL")
		os.Exit(2)
	}
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment},
	}
	resp, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	fmt.Fprintln(os.Stderr, "status", resp.StatusCode)
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
