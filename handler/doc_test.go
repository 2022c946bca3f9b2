package handler

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/handler/admin"
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
	for _, r := range AdminRoutes() {
		if route := r.Method + " " + r.Pattern; !strings.Contains(doc, route) {
			t.Errorf("admin route %q is not documented in docs/api.md", route)
		}
	}
	for _, route := range append(append(append([]string{}, admin.OpenRoutes...), admin.QueryRoutes...), admin.ConsoleRoutes...) {
		if !strings.Contains(doc, route) {
			t.Errorf("route %q is not documented in docs/api.md", route)
		}
	}
	for _, m := range docRoute.FindAllStringSubmatchIndex(doc, -1) {
		method, path := doc[m[2]:m[3]], doc[m[4]:m[5]]
		if strings.HasPrefix(doc[m[1]:], " HTTP/") {
			continue // a request tollgate sends (a webhook), not one it serves
		}
		if !routeExists(method, path) {
			t.Errorf("docs/api.md documents %s %s, which no route serves", method, path)
		}
	}
}

// docRoute finds "METHOD /path" in the docs; the path ends at a space, a
// quote, a bracket or a query.
var docRoute = regexp.MustCompile("\\b(GET|PUT|POST|DELETE|PATCH|HEAD) (/[^\\s`\"'()\\[\\]?,]*)")

// routeExists reports whether a documented method and path is served: by
// an admin route (a {placeholder} or a concrete value where the table has
// a placeholder) or by the query and open routes.
func routeExists(method, path string) bool {
	for _, r := range append(append(append([]string{}, admin.OpenRoutes...), admin.QueryRoutes...), admin.ConsoleRoutes...) {
		if r == method+" "+path {
			return true
		}
	}
	_, ok, _ := admin.FindRoute(method, path)
	return ok
}

func TestRouteTable(t *testing.T) {
	for _, tc := range []struct {
		method, path, want string
		allow              string
	}{
		{"GET", "/v1/accounts/acme", "GET /v1/accounts/{account}", ""},
		{"GET", "/v1/accounts/acme/subaccounts/s1/unblock-code/verify", "", "POST"},
		{"POST", "/v1/accounts/acme/subaccounts/s1/unblock-code/verify", "POST /v1/accounts/{account}/subaccounts/{sub}/unblock-code/verify", ""},
		{"PATCH", "/v1/reload", "", "POST"},
		{"GET", "/v1/accounts/acme/nothing", "", ""},
		{"GET", "/v1/accounts/acme/subaccounts/s1/lock", "GET /v1/accounts/{account}/subaccounts/{sub}/lock", ""},
		{"POST", "/v1/accounts/acme", "", "GET, PUT, PATCH, DELETE"},
	} {
		r, ok, allowed := admin.FindRoute(tc.method, tc.path)
		got := ""
		if ok {
			got = r.Method + " " + r.Pattern
		}
		if got != tc.want || strings.Join(allowed, ", ") != tc.allow {
			t.Errorf("%s %s: route %q allow %q, want %q allow %q", tc.method, tc.path, got, allowed, tc.want, tc.allow)
		}
	}
	if !routeExists("PUT", "/v1/operator/countries/KP") || routeExists("PUT", "/v1/nothing") {
		t.Error("routeExists is wrong")
	}
}
