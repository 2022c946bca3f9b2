// Package deploy_test checks the shipped Prometheus alerting rules and
// Grafana dashboard against what tollgate and the edge proxies really
// export: every metric they name must be in a running tollgate's /metrics
// (with the velocity engine and alerts enabled) or be one of the proxies'
// documented WITH_PROMETHEUS metrics.
package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/handler"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
)

// tollgateMetrics runs a complete handler and returns the names /metrics
// declares (histograms with their _bucket, _sum and _count series) and the
// labels each series carries.
func tollgateMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	plan := numplan.Default()
	alerts, err := alert.New(alert.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	vel := velocity.New(velocity.Options{Notifier: alerts})
	m := matcher.New(plan, matcher.Options{Velocity: vel})
	svc := service.New(m, plan, st, service.Options{Velocity: vel, Logger: zerolog.Nop()})
	if err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	td, err := teardown.New(teardown.Options{Calls: vel, Proxies: []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: "http://127.0.0.1:1/RPC"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := handler.New(m, svc, handler.Options{Logger: zerolog.Nop(), Velocity: vel, Alerts: alerts, Teardown: td})
	// one decision, so the decisions counter has a series with its labels
	q := &fasthttp.RequestCtx{}
	q.Request.SetRequestURI("/v1/check?to=%2B5355512345")
	h.Query(q)
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.SetRequestURI("/metrics")
	h.Query(ctx)
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("/metrics: %d", ctx.Response.StatusCode())
	}
	out := map[string]map[string]bool{}
	series := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, l := range strings.Split(string(ctx.Response.Body()), "\n") {
		if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
			f := strings.Fields(rest)
			out[f[0]] = map[string]bool{}
			if f[1] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					out[f[0]+s] = map[string]bool{}
				}
			}
			continue
		}
		if m := series.FindStringSubmatch(l); m != nil {
			if out[m[1]] == nil {
				out[m[1]] = map[string]bool{}
			}
			for _, lm := range label.FindAllStringSubmatch(m[2], -1) {
				out[m[1]][lm[1]] = true
			}
		}
	}
	return out
}

// proxyMetrics are the metrics of the proxies' WITH_PROMETHEUS switch, with
// their labels; each must be exported by its config and documented in its
// README.
var proxyMetrics = map[string]struct {
	label, cfg, export, readme string
}{
	"kamailio_tollgate_auth_failures": {"ip", "../kamailio/kamailio.cfg", "name=tollgate_auth_failures; label=ip;", "../kamailio/README.md"},
	"kamailio_tollgate_bans":          {"cause", "../kamailio/kamailio.cfg", "name=tollgate_bans; label=cause;", "../kamailio/README.md"},
	"opensips_tollgate_auth_failures": {"ip", "../opensips/opensips.cfg", `prometheus_declare_stat("opensips_tollgate_auth_failures"`, "../opensips/README.md"},
	"opensips_tollgate_bans":          {"cause", "../opensips/opensips.cfg", `prometheus_declare_stat("opensips_tollgate_bans"`, "../opensips/README.md"},
}

var (
	reIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	reNameSel  = regexp.MustCompile(`__name__=~"([^"]+)"`)
	reString   = regexp.MustCompile(`"[^"]*"`)
	reSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}`)
	reMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	reBy       = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// exprMetrics returns the metric names a PromQL expression selects.
func exprMetrics(expr string) []string {
	var names []string
	for _, m := range reNameSel.FindAllStringSubmatch(expr, -1) {
		names = append(names, strings.Split(m[1], "|")...)
	}
	bare := reString.ReplaceAllString(expr, `""`)
	bare = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(bare, "")
	bare = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(bare, "")
	bare = reBy.ReplaceAllString(bare, "")
	for _, id := range reIdent.FindAllString(bare, -1) {
		if strings.HasPrefix(id, "tollgate_") || strings.HasPrefix(id, "kamailio_") || strings.HasPrefix(id, "opensips_") ||
			strings.HasPrefix(id, "process_") || strings.HasPrefix(id, "go_") || id == "up" {
			names = append(names, id)
		}
	}
	return names
}

// checkExpr checks that every metric of expr exists and that every label it
// matches on or groups by belongs to one of them.
func checkExpr(t *testing.T, where, expr string, tg map[string]map[string]bool) {
	t.Helper()
	for _, p := range exprProblems(expr, tg) {
		t.Errorf("%s: %s", where, p)
	}
}

func exprProblems(expr string, tg map[string]map[string]bool) []string {
	var p []string
	names := exprMetrics(expr)
	if len(names) == 0 {
		return []string{fmt.Sprintf("%q selects no tollgate or proxy metric", expr)}
	}
	labels := map[string]bool{"instance": true, "job": true, "le": true, "__name__": true}
	for _, n := range names {
		if n == "up" { // Prometheus's own, per target: labels job and instance
			continue
		}
		if p, ok := proxyMetrics[n]; ok {
			labels[p.label] = true
			continue
		}
		got, ok := tg[n]
		if !ok {
			p = append(p, fmt.Sprintf("metric %s is not in tollgate's /metrics nor a documented proxy metric", n))
			continue
		}
		for l := range got {
			labels[l] = true
		}
	}
	var used []string
	for _, s := range reSelector.FindAllStringSubmatch(reNameSel.ReplaceAllString(expr, ""), -1) {
		for _, m := range reMatcher.FindAllStringSubmatch(s[2], -1) {
			used = append(used, m[1])
		}
	}
	for _, b := range reBy.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(b[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				used = append(used, l)
			}
		}
	}
	for _, l := range used {
		if !labels[l] {
			p = append(p, fmt.Sprintf("label %q is not a label of %v", l, names))
		}
	}
	return p
}

type rule struct {
	alert, expr, forDur string
	labels, annots      map[string]string
}

// parseRules reads the alerting rules file: the subset of YAML it uses
// (groups of rules, each a mapping of scalars and two string mappings),
// strictly enough to catch a broken indentation or a missing field.
func parseRules(t *testing.T, text string) (groups map[string][]rule) {
	t.Helper()
	groups = map[string][]rule{}
	var (
		group   string
		cur     *rule
		section map[string]string
		inRules bool
	)
	flush := func() {
		if cur != nil {
			groups[group] = append(groups[group], *cur)
			cur = nil
		}
	}
	unquote := func(v string) string {
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			return strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
		}
		return v
	}
	sawGroups := false
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.Contains(line, "\t") {
			t.Fatalf("line %d: a tab in YAML", n)
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		body := strings.TrimSpace(line)
		key, val, _ := strings.Cut(strings.TrimPrefix(body, "- "), ":")
		val = strings.TrimSpace(val)
		switch {
		case indent == 0 && body == "groups:":
			sawGroups = true
		case indent == 2 && strings.HasPrefix(body, "- name:"):
			flush()
			group, inRules = unquote(val), false
		case indent == 4 && body == "rules:":
			inRules = true
		case indent == 6 && strings.HasPrefix(body, "- alert:") && inRules:
			flush()
			cur = &rule{alert: unquote(val), labels: map[string]string{}, annots: map[string]string{}}
			section = nil
		case indent == 8 && cur != nil:
			switch key {
			case "expr":
				if val == "" || val == "|" || val == ">" {
					t.Fatalf("line %d: keep expr on one line", n)
				}
				cur.expr = unquote(val)
			case "for":
				cur.forDur = val
			case "labels":
				section = cur.labels
			case "annotations":
				section = cur.annots
			default:
				t.Fatalf("line %d: unexpected rule field %q", n, key)
			}
		case indent == 10 && section != nil:
			section[key] = unquote(val)
		default:
			t.Fatalf("line %d: unexpected %q at indentation %d", n, body, indent)
		}
	}
	flush()
	if !sawGroups {
		t.Fatal("no top-level groups:")
	}
	return groups
}

func TestAlertingRules(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("prometheus", "tollgate-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tg := tollgateMetrics(t)
	groups := parseRules(t, string(b))
	byName := map[string]rule{}
	for g, rules := range groups {
		if len(rules) == 0 {
			t.Errorf("group %s has no rules", g)
		}
		for _, r := range rules {
			if _, dup := byName[r.alert]; dup {
				t.Errorf("alert %s defined twice", r.alert)
			}
			byName[r.alert] = r
			if r.expr == "" || r.annots["summary"] == "" || r.annots["description"] == "" {
				t.Errorf("%s: expr, summary and description are required", r.alert)
			}
			switch r.labels["severity"] {
			case "info", "warning", "critical":
			default:
				t.Errorf("%s: severity %q", r.alert, r.labels["severity"])
			}
			if r.forDur != "" && !regexp.MustCompile(`^[0-9]+[smh]$`).MatchString(r.forDur) {
				t.Errorf("%s: for %q", r.alert, r.forDur)
			}
			if strings.Count(r.expr, "(") != strings.Count(r.expr, ")") || strings.Count(r.expr, "{") != strings.Count(r.expr, "}") {
				t.Errorf("%s: unbalanced expr %q", r.alert, r.expr)
			}
			checkExpr(t, r.alert, r.expr, tg)
		}
	}
	// the five alerts of the issue, each on what it is about
	for name, want := range map[string]string{
		"TollgateChannelsAboveTypicalPeak":            "tollgate_channels_peak_ratio_max > 1.1",
		"TollgateCPSAboveCap":                         "tollgate_cps_cap_ratio_max > 1",
		"TollgateAttemptOutsidePermittedDestinations": `tollgate_decisions_total{verdict="reject",reason=~"country_barred|country_disabled|number_barred|rate_exceeded"}`,
		"ProxyAuthFailuresFromOneIP":                  "> 5",
		"TollgateLockdown":                            "tollgate_lockdowns_total",
	} {
		r, ok := byName[name]
		if !ok || !strings.Contains(r.expr, want) {
			t.Errorf("alert %s missing or not on %q: %q", name, want, r.expr)
		}
	}
	if r := byName["ProxyAuthFailuresFromOneIP"]; !strings.Contains(r.expr, "by (instance, ip)") || !strings.Contains(r.expr, "[1m]") {
		t.Errorf("auth failures must be per IP and per minute: %q", r.expr)
	}
	// the reasons it names are tollgate's
	reasons := map[string]bool{}
	for _, in := range matcher.Reasons {
		reasons[in.Name] = true
	}
	for _, r := range strings.Split("country_barred|country_disabled|number_barred|rate_exceeded", "|") {
		if !reasons[r] {
			t.Errorf("reason %s is not in matcher.Reasons", r)
		}
	}
	checkProxyMetrics(t)
}

func checkProxyMetrics(t *testing.T) {
	for name, p := range proxyMetrics {
		cfg, err := os.ReadFile(p.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(cfg), p.export) {
			t.Errorf("%s: %s does not export it (%s)", name, p.cfg, p.export)
		}
		readme, err := os.ReadFile(p.readme)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), name) {
			t.Errorf("%s is not documented in %s", name, p.readme)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "tollgate-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title         string `json:"title"`
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name, Type string
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct{ Expr string } `json:"list"`
		} `json:"annotations"`
		Panels []struct {
			ID      int                      `json:"id"`
			Type    string                   `json:"type"`
			Title   string                   `json:"title"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 || len(d.Panels) < 10 {
		t.Fatalf("dashboard header: %q %q %d, %d panels", d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["instance"] {
		t.Errorf("template variables %v", vars)
	}
	tg := tollgateMetrics(t)
	ids := map[int]bool{}
	seen := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tgt := range p.Targets {
			checkExpr(t, "panel "+p.Title, tgt.Expr, tg)
			for _, n := range exprMetrics(tgt.Expr) {
				seen[n] = true
			}
		}
	}
	for _, a := range d.Annotations.List {
		checkExpr(t, "annotation", a.Expr, tg)
	}
	// the dashboard shows every velocity, lockdown and alert metric
	var missing []string
	for n := range tg {
		if (strings.HasPrefix(n, "tollgate_lock") || strings.HasPrefix(n, "tollgate_alerts") || strings.HasPrefix(n, "tollgate_webhook") ||
			strings.HasPrefix(n, "tollgate_cps_") || strings.HasPrefix(n, "tollgate_channels_") || strings.HasPrefix(n, "tollgate_call_events") ||
			n == "tollgate_live_calls") && !seen[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard does not show %v", missing)
	}
}

// The checks can fail: a misspelt metric, an unknown label, a missing alert.
func TestChecksCatchMistakes(t *testing.T) {
	tg := tollgateMetrics(t)
	for _, expr := range []string{
		"tollgate_lockdown_total > 0",
		`sum by (account) (tollgate_live_calls)`,
		`increase(tollgate_decisions_total{reasn="x"}[5m])`,
		`max by (ip) (increase({__name__=~"kamailio_tollgate_auth_failure"}[1m]))`,
	} {
		if len(exprProblems(expr, tg)) == 0 {
			t.Errorf("not caught: %s", expr)
		}
	}
}
