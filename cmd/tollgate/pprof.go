//go:build pprof

// Built only with -tags pprof: serves net/http/pprof on the address in
// TOLLGATE_PPROF (e.g. 127.0.0.1:6060) for heap profiles of a running
// daemon (docs/benchmarks.md, footprint). Release builds do not have it.
package main

import (
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("TOLLGATE_PPROF"); addr != "" {
		go func() { log.Println(http.ListenAndServe(addr, nil)) }()
	}
}
