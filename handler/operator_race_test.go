package handler

import (
	"sync"
	"testing"
)

// Issue 11 item 15 over HTTP: GET /v1/operator while
// PUT/DELETE /v1/operator/countries/{CC} run, with geo profiles and a
// source blocklist set. The race detector reported the GET's encoding
// racing the PUT's validation on the old code (go test -race).
func TestOperatorGetDuringCountryPut(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/operator", `{"geo_profiles":{"strict":{"zones":[{"name":"home","action":"allow","countries":["US","CA"]}],"unknown":"reject"}},`+
		`"source_blocklist":{"cidrs":["192.0.2.0/24"],"countries":["KP"]},"default":{"origin":{"mobility":"roaming"}}}`)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := e.a("GET", "/v1/operator", ""); r.status != 200 {
				t.Errorf("GET: %d %s", r.status, r.body)
				return
			}
		}
	}()
	for i := 0; i < 30; i++ {
		e.mustA("PUT", "/v1/operator/countries/CU", `{"reason":"test"}`)
		e.mustA("DELETE", "/v1/operator/countries/CU", "")
	}
	close(stop)
	wg.Wait()
	contains(t, "operator", e.mustA("GET", "/v1/operator", "").body, `"geo_profiles":{"strict":`, `"cidrs":["192.0.2.0/24"]`)
}
