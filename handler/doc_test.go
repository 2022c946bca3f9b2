package handler

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/teardown"
)

// TestAPIDoc keeps docs/api.md honest: its verdict table is matcher.Reasons,
// and every metric /metrics writes and every admin route is documented.
func TestAPIDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for i, in := range matcher.Reasons {
		action := matcher.Reason(i).Verdict()
		status := action.HTTPStatus()
		row := fmt.Sprintf("| `%s` | %d | %s | %d | %d %s | %s |", in.Name, in.Code, action, status, in.SIPCode, in.SIPReason, in.Message)
		if !strings.Contains(doc, row) {
			t.Errorf("docs/api.md lacks the verdict row\n%s", row)
		}
	}

	h := newEnv(t).h // loaded, so every metric is written
	td, err := teardown.New(teardown.Options{Calls: h.vel, Proxies: []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: "http://127.0.0.1:1/RPC"}}})
	if err != nil {
		t.Fatal(err)
	}
	h.opt.Teardown = td // and the teardown's, as with -proxy-control
	var m bytes.Buffer
	h.writeMetrics(&m)
	for _, line := range strings.Split(m.String(), "\n") {
		name, ok := strings.CutPrefix(line, "# TYPE ")
		if !ok {
			continue
		}
		name = strings.Fields(name)[0]
		short := name
		for _, p := range []string{"tollgate_national_cache_", "tollgate_snapshot_"} {
			if strings.HasPrefix(name, p) {
				short = "_" + strings.TrimPrefix(name, p)
			}
		}
		if !strings.Contains(doc, "`"+name+"`") && !strings.Contains(doc, "`"+short+"`") && !strings.Contains(doc, short+"`") {
			t.Errorf("metric %s is not documented", name)
		}
	}
	for _, route := range []string{
		"GET /v1/accounts", "GET /v1/accounts/{account}", "PUT /v1/accounts/{account}", "DELETE /v1/accounts/{account}",
		"GET /v1/accounts/{account}/subaccounts/{sub}", "PUT /v1/accounts/{account}/subaccounts/{sub}",
		"DELETE /v1/accounts/{account}/subaccounts/{sub}", "GET /v1/operator", "PUT /v1/operator",
		"PUT /v1/operator/countries/{CC}", "DELETE /v1/operator/countries/{CC}", "PUT /v1/operator/prefixes/{prefix}",
		"DELETE /v1/operator/prefixes/{prefix}", "GET /v1/recommended-denies", "PUT /v1/operator/recommended-denies",
		"DELETE /v1/operator/recommended-denies", "GET /v1/high-risk", "PUT /v1/high-risk", "DELETE /v1/high-risk",
		"POST /v1/reload", "GET /v1/countries", "GET /v1/audit", "GET /health", "GET /ready", "GET /metrics",
		"GET /v1/check", "POST /v1/check", "POST /rpc", "POST /v1/events",
		"GET /v1/accounts/{account}/velocity", "DELETE /v1/accounts/{account}/velocity",
		"GET /v1/accounts/{account}/subaccounts/{sub}/velocity", "DELETE /v1/accounts/{account}/subaccounts/{sub}/velocity",
		"GET /v1/accounts/{account}/lock", "PUT /v1/accounts/{account}/lock", "DELETE /v1/accounts/{account}/lock",
		"DELETE /v1/accounts/{account}/subaccounts/{sub}/lock", "GET /v1/locks",
		"GET /v1/rate-deck", "PUT /v1/rate-deck", "DELETE /v1/rate-deck", "GET /v1/alerts",
		"GET /v1/accounts/{account}/origin", "POST /v1/accounts/{account}/screening", "DELETE /v1/accounts/{account}/quarantine",
		"PUT /v1/accounts/{account}/home-origin", "DELETE /v1/accounts/{account}/home-origin",
		"PUT /v1/accounts/{account}/unblock-code", "DELETE /v1/accounts/{account}/unblock-code",
		"POST /v1/accounts/{account}/unblock-code/verify",
	} {
		if !strings.Contains(doc, route) {
			t.Errorf("route %q is not documented", route)
		}
	}
}
