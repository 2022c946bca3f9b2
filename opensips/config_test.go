package opensips_test

// Contract and structure tests of opensips/opensips.cfg. OpenSIPS 3.6 is not
// packaged for this machine, so nothing here runs OpenSIPS; instead the config
// is checked against what the sidecar really speaks (the handler's query
// parameter names, the fields AppendVerdict emits, the JSON-RPC method, the
// actions and their HTTP statuses) and against the Kamailio config it must
// mirror (switches, headers, 503 reason phrases), and every switch
// combination is expanded and checked for the mistakes OpenSIPS would refuse
// at start-up (unbalanced braces or quotes, a modparam or function of a module
// that is not loaded, a missing module parameter, an undefined route).
//
// The config is an m4 template (OpenSIPS's documented -p preprocessing). The
// test expands it with a small expander for the m4 subset the file uses; when
// GNU m4 is installed it also runs the real "m4 -P" exactly as OpenSIPS would
// (with OpenSIPS's line annotations) and requires the same result.

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/handler"
	"github.com/tollgate/tollgate/matcher"
)

// switches are the -D switches of the config; every combination is expanded.
var switches = []string{"WITH_IPAUTH", "WITH_AUTH", "WITH_JSONRPC", "FAIL_OPEN", "RELAY_ONLY", "WITH_PROMETHEUS", "WITH_CONTROL", "WITHOUT_CALL_EVENTS"}

// contract is what the sidecar and the Kamailio config define, read from this
// repository (never typed in here, so that renaming anything there is seen).
type contract struct {
	queryParams    []string        // handler's query field names, wire order
	responseFields map[string]bool // top-level keys AppendVerdict emits
	rpcMethod      string          // JSON-RPC method name the handler serves
	checkPath      string          // the query path the handler routes
	actions        map[string]int  // action wire name -> HTTP status
	kam            string          // kamailio/kamailio.cfg
	eventFields    []string        // the call event's members the handler reads
	eventMethod    string          // the JSON-RPC method of call events
	eventsPath     string          // the HTTP path of call events
	eventsToken    string          // the member of the authenticated events wrapper holding the token
	eventsList     string          // the member of the wrapper holding the events
	dialogFields   []string        // the members of an event's "dialog" the handler reads
	teardown       string          // teardown/teardown.go: the RPCs tollgate sends the proxies
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// loadContract reads the sidecar's side of the wire contract.
func loadContract(t *testing.T) contract {
	t.Helper()
	var c contract

	// Query parameter names: the handler's fieldNames table (unexported, so
	// read from the source).
	dec := readFile(t, filepath.Join("..", "handler", "query", "decode.go"))
	m := regexp.MustCompile(`fieldNames\s*=\s*\[numFields\]string\{([^}]*)\}`).FindStringSubmatch(dec)
	if m == nil {
		t.Fatal("handler/query/decode.go: fieldNames table not found; update this test to where the query field names live now")
	}
	for _, q := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(m[1], -1) {
		c.queryParams = append(c.queryParams, q[1])
	}
	if len(c.queryParams) == 0 {
		t.Fatal("handler/query/decode.go: fieldNames is empty")
	}

	// Response fields: what the one verdict encoder really emits, the
	// optional ones (account-wide caps, routing number) included.
	v := matcher.Verdict{Action: matcher.Reject, Reason: matcher.ReasonCountryBarred, Country: "CU", Account: "acme",
		AccountMaxChannels: 1, AccountMaxCPS: 1, DecidedBy: matcher.DecidedByRN, Template: "retail-eu"}
	var obj map[string]any
	if err := json.Unmarshal(handler.AppendVerdict(nil, &v), &obj); err != nil {
		t.Fatalf("AppendVerdict output is not JSON: %v", err)
	}
	c.responseFields = map[string]bool{}
	for k := range obj {
		c.responseFields[k] = true
	}
	// and the field names written in handler/query/encode.go agree with it
	enc := readFile(t, filepath.Join("..", "handler", "query", "encode.go"))
	for _, f := range regexp.MustCompile(`[{,]"([a-z0-9_]+)":`).FindAllStringSubmatch(enc, -1) {
		if f[1] != "error" && !c.responseFields[f[1]] {
			t.Fatalf("handler/query/encode.go writes %q but AppendVerdict does not emit it", f[1])
		}
	}

	rpc := readFile(t, filepath.Join("..", "handler", "query", "rpc.go"))
	mm := regexp.MustCompile(`methodCheck\s*=\s*\[\]byte\("([^"]+)"\)`).FindStringSubmatch(rpc)
	if mm == nil {
		t.Fatal("handler/query/rpc.go: methodCheck not found; update this test to where the JSON-RPC method name lives now")
	}
	c.rpcMethod = mm[1]

	h := readFile(t, filepath.Join("..", "handler", "query", "query.go"))
	pm := regexp.MustCompile(`case "(/v1/[a-z]+)":\s*\n\s*h\.check\(ctx\)`).FindStringSubmatch(h)
	if pm == nil {
		t.Fatal("handler/query/query.go: the route to h.check not found")
	}
	c.checkPath = pm[1]

	ev := readFile(t, filepath.Join("..", "handler", "query", "events.go"))
	em := regexp.MustCompile(`(?s)type eventJSON struct \{(.*?)\n\}`).FindStringSubmatch(ev)
	if em == nil {
		t.Fatal("handler/query/events.go: eventJSON not found; update this test to where the call event fields live now")
	}
	for _, f := range regexp.MustCompile(`json:"([a-z_]+)"`).FindAllStringSubmatch(em[1], -1) {
		c.eventFields = append(c.eventFields, f[1])
	}
	if me := regexp.MustCompile(`methodEvent\s*=\s*\[\]byte\("([^"]+)"\)`).FindStringSubmatch(rpc); me != nil {
		c.eventMethod = me[1]
	} else {
		t.Fatal("handler/query/rpc.go: methodEvent not found")
	}
	if pe := regexp.MustCompile(`case "(/v1/[a-z]+)":\s*\n\s*h\.events\(ctx\)`).FindStringSubmatch(h); pe != nil {
		c.eventsPath = pe[1]
	} else {
		t.Fatal("handler/query/query.go: the route to h.events not found")
	}

	// the authenticated events wrapper {"token":…,"events":…}: the tags of
	// the struct unwrapEvents decodes
	wm := regexp.MustCompile("(?s)Token\\s+json.RawMessage\\s+`json:\"([a-z_]+)\"`\\s*\n\\s*Events\\s+json.RawMessage\\s+`json:\"([a-z_]+)\"`").FindStringSubmatch(ev)
	if wm == nil {
		t.Fatal("handler/query/events.go: the events wrapper (Token, Events) not found; update this test to where it lives now")
	}
	c.eventsToken, c.eventsList = wm[1], wm[2]
	dm := regexp.MustCompile(`(?s)type dialogJSON struct \{(.*?)\n\}`).FindStringSubmatch(ev)
	if dm == nil {
		t.Fatal("handler/query/events.go: dialogJSON not found; update this test to where the dialog members live now")
	}
	for _, f := range regexp.MustCompile(`json:"([a-z_]+)"`).FindAllStringSubmatch(dm[1], -1) {
		c.dialogFields = append(c.dialogFields, f[1])
	}
	c.teardown = readFile(t, filepath.Join("..", "teardown", "teardown.go"))

	c.actions = map[string]int{}
	for _, a := range []matcher.Action{matcher.Allow, matcher.Reject, matcher.Screen} {
		c.actions[a.String()] = a.HTTPStatus()
	}
	c.kam = readFile(t, filepath.Join("..", "kamailio", "kamailio.cfg"))
	return c
}

// expand is the m4 subset opensips.cfg uses, with "m4 -P" semantics: the
// changequote and TRYDEF prologue, m4_dnl, m4_ifdef([[X]], [[a]], [[b]]) with
// nesting, and substitution of defined macros as whole words outside
// comments. defs holds -D values ("" for a bare switch).
func expand(src string, defs map[string]string) (string, error) {
	macros := map[string]string{}
	for k, v := range defs {
		macros[k] = v
	}
	var out strings.Builder
	var ex func(s string) (string, error)
	word := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)
	// parseArgs reads "(a, b, ...)" at s[0]; args are [[quoted]] or bare
	parseArgs := func(s string) (args []string, n int, err error) {
		if !strings.HasPrefix(s, "(") {
			return nil, 0, fmt.Errorf("macro call without arguments")
		}
		i := 1
		for {
			for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
				i++
			}
			var a strings.Builder
			for i < len(s) && s[i] != ',' && s[i] != ')' {
				if strings.HasPrefix(s[i:], "[[") {
					depth, j := 1, i+2
					for j < len(s) && depth > 0 {
						switch {
						case strings.HasPrefix(s[j:], "[["):
							depth++
							j += 2
						case strings.HasPrefix(s[j:], "]]"):
							depth--
							j += 2
						default:
							j++
						}
					}
					if depth != 0 {
						return nil, 0, fmt.Errorf("unterminated [[ quote")
					}
					a.WriteString(s[i+2 : j-2])
					i = j
					continue
				}
				a.WriteByte(s[i])
				i++
			}
			if i >= len(s) {
				return nil, 0, fmt.Errorf("unterminated macro call")
			}
			args = append(args, a.String())
			if s[i] == ')' {
				return args, i + 1, nil
			}
			i++
		}
	}
	ex = func(s string) (string, error) {
		var b strings.Builder
		for i := 0; i < len(s); {
			c := s[i]
			switch {
			case c == '#': // m4 comment: copied, not expanded
				j := strings.IndexByte(s[i:], '\n')
				if j < 0 {
					j = len(s) - i
				} else {
					j++
				}
				b.WriteString(s[i : i+j])
				i += j
			case strings.HasPrefix(s[i:], "[["):
				return "", fmt.Errorf("unexpected [[ outside a macro call")
			case word.MatchString(s[i:]) && (i == 0 || !isWordByte(s[i-1])):
				w := word.FindString(s[i:])
				rest := s[i+len(w):]
				switch w {
				case "m4_dnl":
					j := strings.IndexByte(rest, '\n')
					if j < 0 {
						i = len(s)
					} else {
						i += len(w) + j + 1
					}
				case "m4_changequote", "m4_define":
					_, n, err := parseArgs(rest)
					if err != nil {
						return "", fmt.Errorf("%s: %v", w, err)
					}
					i += len(w) + n
				case "TRYDEF":
					args, n, err := parseArgs(rest)
					if err != nil || len(args) != 2 {
						return "", fmt.Errorf("TRYDEF: %v", err)
					}
					val, err := ex(args[1])
					if err != nil {
						return "", err
					}
					if _, ok := macros[args[0]]; !ok {
						macros[args[0]] = val
					}
					i += len(w) + n
				case "m4_ifdef":
					args, n, err := parseArgs(rest)
					if err != nil || len(args) < 2 || len(args) > 3 {
						return "", fmt.Errorf("m4_ifdef: bad call: %v", err)
					}
					pick := ""
					if _, ok := macros[args[0]]; ok {
						pick = args[1]
					} else if len(args) == 3 {
						pick = args[2]
					}
					r, err := ex(pick)
					if err != nil {
						return "", err
					}
					b.WriteString(r)
					i += len(w) + n
				default:
					if strings.HasPrefix(w, "m4_") {
						return "", fmt.Errorf("m4 builtin %s is not supported by this test's expander", w)
					}
					if v, ok := macros[w]; ok {
						b.WriteString(v)
					} else {
						b.WriteString(w)
					}
					i += len(w)
				}
			default:
				b.WriteByte(c)
				i++
			}
		}
		return b.String(), nil
	}
	r, err := ex(src)
	out.WriteString(r)
	return out.String(), err
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// code returns the config with comments and string contents blanked, so
// structure can be checked without strings or comments getting in the way.
// Strings keep their quotes. OpenSIPS strings do not span lines.
func code(cfg string) (string, []string) {
	var b strings.Builder
	var problems []string
	inStr, inBlock := false, false
	line := 1
	for i := 0; i < len(cfg); i++ {
		c := cfg[i]
		if c == '\n' {
			if inStr {
				problems = append(problems, fmt.Sprintf("line %d: unterminated string", line))
				inStr = false
			}
			line++
			b.WriteByte('\n')
			continue
		}
		switch {
		case inBlock:
			if c == '*' && i+1 < len(cfg) && cfg[i+1] == '/' {
				inBlock = false
				i++
			}
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
				b.WriteByte('"')
			}
		case c == '#':
			for i+1 < len(cfg) && cfg[i+1] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(cfg) && cfg[i+1] == '*':
			inBlock = true
			i++
		case c == '"':
			inStr = true
			b.WriteByte('"')
		default:
			b.WriteByte(c)
		}
	}
	if inBlock {
		problems = append(problems, "unterminated /* comment")
	}
	return b.String(), problems
}

// funcModule says which module exports each function the config may call;
// "" is the core. A call of anything else is reported (typo or new module).
var funcModule = map[string]string{
	"send_reply": "signaling", "t_relay": "tm", "t_check_trans": "tm", "t_newtran": "tm",
	"record_route": "rr", "loose_route": "rr", "mf_process_maxfwd_header": "maxfwd",
	"is_method": "sipmsgops", "has_totag": "sipmsgops", "append_to_reply": "sipmsgops",
	"append_hf": "sipmsgops", "remove_hf": "sipmsgops", "remove_hf_re": "sipmsgops",
	"is_present_hf": "sipmsgops", "sipmsg_validate": "sipmsgops",
	"get_dynamic_lock": "cfgutils", "release_dynamic_lock": "cfgutils",
	"pike_check_req": "pike", "create_dialog": "dialog", "set_dlg_profile": "dialog",
	"get_profile_size": "dialog", "rl_check": "ratelimit",
	"jsonrpc_request": "jsonrpc", "rest_get": "rest_client", "jsonrpc_notification": "jsonrpc", "rest_post": "rest_client",
	"dlg_on_answer": "dialog", "dlg_on_hangup": "dialog", "launch": "",
	"update_stat": "statistics", "stat_iter_init": "statistics", "stat_iter_next": "statistics",
	"prometheus_declare_stat": "prometheus", "prometheus_push_stat": "prometheus",
	"check_source_address": "permissions", "proxy_challenge": "auth",
	"consume_credentials": "auth", "proxy_authorize": "auth_db",
	"xlog": "", "pv_printf": "", "cache_store": "", "cache_fetch": "", "cache_add": "",
	"cache_remove": "", "route": "", "async": "", "return": "", "exit": "",
}

// needs lists, per module, the other modules it needs loaded and the
// parameters this design relies on.
var needs = map[string]struct{ mods, params []string }{
	"signaling":     {mods: []string{"sl", "tm"}},
	"tm":            {params: []string{"fr_timeout", "fr_inv_timeout"}},
	"pike":          {params: []string{"sampling_time_unit", "reqs_density_per_unit"}},
	"cachedb_local": {params: []string{"cachedb_url"}},
	"dialog":        {params: []string{"profiles_with_value"}},
	"cfgutils":      {params: []string{"lock_pool_size"}},
	"ratelimit":     {params: []string{"timer_interval"}},
	"jsonrpc":       {params: []string{"connect_timeout", "write_timeout", "read_timeout"}},
	"rest_client":   {params: []string{"connection_timeout", "curl_timeout"}},
	"permissions":   {mods: []string{"db_text"}, params: []string{"db_url"}},
	"auth_db":       {mods: []string{"auth", "db_text"}, params: []string{"db_url", "calculate_ha1", "use_domain"}},
	"auth":          {mods: []string{"signaling"}},
	"prometheus":    {mods: []string{"httpd", "statistics"}, params: []string{"script_route"}},
	"mi_http":       {mods: []string{"httpd", "dialog"}, params: []string{"root"}},
	"httpd":         {params: []string{"ip", "port"}},
	"statistics":    {params: []string{"stat_groups"}},
}

var (
	reLoad     = regexp.MustCompile(`(?m)^\s*loadmodule\s+"([a-z_0-9]+)\.so"`)
	reModparam = regexp.MustCompile(`(?m)^\s*modparam\("([a-z_0-9]+)",\s*"([a-z_0-9]+)",\s*("[^"]*"|[0-9]+)\)`)
	reRouteDef = regexp.MustCompile(`(?m)^\s*(?:route\[([A-Za-z0-9_]+)\]|(route)|(startup_route))\s*\{`)
	reRouteRef = regexp.MustCompile(`\broute\(([A-Za-z0-9_]+)\)`)
	reAsyncRef = regexp.MustCompile(`\basync\(.*,\s*([A-Za-z0-9_]+)\)\s*;`)
	reDlgRoute = regexp.MustCompile(`\bdlg_on_(?:answer|hangup|timeout)\("([A-Za-z0-9_]+)"\)`)
	reCall     = regexp.MustCompile(`(^|[^$A-Za-z0-9_{.])([a-z_][a-z0-9_]*)\s*\(`)
	reProfile  = regexp.MustCompile(`(?:set_dlg_profile|get_profile_size)\("([a-z_]+)"`)
	keywords   = map[string]bool{"if": true, "while": true, "switch": true, "for": true, "loadmodule": true, "modparam": true}
)

// checkExpanded checks one expanded config (one switch combination) for what
// OpenSIPS would refuse at start-up.
func checkExpanded(cfg string, settings []string) []string {
	var p []string
	c, sp := code(cfg)
	p = append(p, sp...)

	for _, bad := range []string{"m4_", "TRYDEF", "[[", "]]"} {
		if strings.Contains(c, bad) {
			p = append(p, fmt.Sprintf("%q left after expansion", bad))
		}
	}
	for _, s := range settings {
		if regexp.MustCompile(`\b`+s+`\b`).MatchString(cfg) && regexp.MustCompile(`\b`+s+`\b`).MatchString(stripComments(cfg)) {
			p = append(p, fmt.Sprintf("setting %s left unexpanded", s))
		}
	}
	// brackets balance, and never close below zero
	for _, pair := range [][2]byte{{'{', '}'}, {'(', ')'}, {'[', ']'}} {
		depth := 0
		for i := 0; i < len(c); i++ {
			if c[i] == pair[0] {
				depth++
			} else if c[i] == pair[1] {
				depth--
				if depth < 0 {
					p = append(p, fmt.Sprintf("unbalanced %c at line %d", pair[1], strings.Count(c[:i], "\n")+1))
					depth = 0
				}
			}
		}
		if depth != 0 {
			p = append(p, fmt.Sprintf("%d unclosed %c", depth, pair[0]))
		}
	}

	loaded := map[string]bool{}
	for _, m := range reLoad.FindAllStringSubmatch(cfg, -1) {
		if loaded[m[1]] {
			p = append(p, "module loaded twice: "+m[1])
		}
		loaded[m[1]] = true
	}
	params := map[string]map[string]string{}
	for _, m := range reModparam.FindAllStringSubmatch(cfg, -1) {
		if !loaded[m[1]] {
			p = append(p, fmt.Sprintf("modparam for %s, which is not loaded", m[1]))
		}
		if params[m[1]] == nil {
			params[m[1]] = map[string]string{}
		}
		params[m[1]][m[2]] = strings.Trim(m[3], `"`)
	}
	if n := strings.Count(c, "modparam("); n != len(reModparam.FindAllString(cfg, -1)) {
		p = append(p, "a modparam() is not of the form modparam(\"module\", \"param\", \"string\"|int)")
	}
	for mod := range loaded {
		for _, dep := range needs[mod].mods {
			if !loaded[dep] {
				p = append(p, fmt.Sprintf("%s needs %s loaded", mod, dep))
			}
		}
		for _, par := range needs[mod].params {
			if _, ok := params[mod][par]; !ok {
				p = append(p, fmt.Sprintf("%s loaded without modparam %q", mod, par))
			}
		}
	}
	for _, mod := range []string{"permissions", "auth_db"} {
		if u := params[mod]["db_url"]; loaded[mod] && !strings.HasPrefix(u, "text://") {
			p = append(p, fmt.Sprintf("%s db_url %q is not a db_text URL", mod, u))
		}
	}
	if strings.Contains(c, "$json(") && !loaded["json"] {
		p = append(p, "$json used without the json module")
	}
	if strings.Contains(cfg, "{rest.escape}") && !loaded["rest_client"] {
		p = append(p, "{rest.escape} used without rest_client")
	}
	if strings.Contains(c, `cache_`) && !loaded["cachedb_local"] {
		p = append(p, "cache_* used without cachedb_local")
	}
	if strings.Contains(c, "async(") && !loaded["tm"] {
		p = append(p, "async() used without tm")
	}
	for _, m := range reCall.FindAllStringSubmatch(c, -1) {
		fn := m[2]
		if keywords[fn] {
			continue
		}
		mod, ok := funcModule[fn]
		if !ok {
			p = append(p, "call of unknown function "+fn)
		} else if mod != "" && !loaded[mod] {
			p = append(p, fmt.Sprintf("%s() used but %s is not loaded", fn, mod))
		}
	}

	// dialog profiles used are declared with values
	declared := map[string]bool{}
	for _, d := range strings.Split(params["dialog"]["profiles_with_value"], ";") {
		declared[strings.TrimSpace(d)] = true
	}
	for _, m := range reProfile.FindAllStringSubmatch(cfg, -1) {
		if !declared[m[1]] {
			p = append(p, "dialog profile not declared in profiles_with_value: "+m[1])
		}
	}

	// routes
	defined := map[string]int{}
	for _, m := range reRouteDef.FindAllStringSubmatch(c, -1) {
		name := m[1] + m[2] + m[3]
		defined[name]++
	}
	for name, n := range defined {
		if n > 1 {
			p = append(p, fmt.Sprintf("route %s defined %d times", name, n))
		}
	}
	if defined["route"] != 1 {
		p = append(p, "no main route {} block")
	}
	for _, m := range append(reRouteRef.FindAllStringSubmatch(c, -1), reAsyncRef.FindAllStringSubmatch(c, -1)...) {
		if defined[m[1]] == 0 {
			p = append(p, "route referenced but not defined: "+m[1])
		}
	}
	// dialog callbacks name their route in a string, which code() blanks
	for _, m := range reDlgRoute.FindAllStringSubmatch(stripComments(cfg), -1) {
		if defined[m[1]] == 0 {
			p = append(p, "dialog callback route not defined: "+m[1])
		}
	}
	sort.Strings(p)
	return p
}

func stripComments(cfg string) string {
	var b strings.Builder
	for _, l := range strings.Split(cfg, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

var (
	reTrydef        = regexp.MustCompile(`(?m)^TRYDEF\(\[\[([A-Z0-9_]+)\]\],\s*(?:\[\[(.*)\]\]|([A-Z0-9_]+))\)m4_dnl$`)
	reKamTrydef     = regexp.MustCompile(`(?m)^#!trydef\s+([A-Z0-9_]+)\s+(.*)$`)
	reKamIfdef      = regexp.MustCompile(`(?m)^#!ifn?def\s+([A-Z0-9_]+)`)
	reM4Ifdef       = regexp.MustCompile(`m4_ifdef\(\[\[([A-Z0-9_]+)\]\]`)
	reURLParam      = regexp.MustCompile(`[?&]([a-z_]+)=`)
	reRPCField      = regexp.MustCompile(`\$json\(tgq/([a-z_]+)\)\s*=`)
	reJSONRead      = regexp.MustCompile(`\$json\(tgv/([a-z_]+)\)`)
	reKam503        = regexp.MustCompile(`send_reply\("503",\s*"([^"]+)"\)`)
	reOS503         = regexp.MustCompile(`send_reply\(503,\s*"([^"]+)"\)`)
	reTGReason      = regexp.MustCompile(`X-Tollgate-Reason: ([a-z_]+)\\r\\n`)
	reOSEvent       = regexp.MustCompile(`\$json\(tge/([a-z_]+)\)\s*:?=`)
	reOSDialog      = regexp.MustCompile(`\$json\(tge/dialog/([a-z_]+)\)\s*=`)
	reKamDialog     = regexp.MustCompile(`\$xavp\(tgd(?:\[0\])?=>([a-z_]+)\)\s*=`)
	reKamJSONMember = regexp.MustCompile(`\\"([a-z_]+)\\":`)
	reKamEvent      = regexp.MustCompile(`\$xavp\(tge(?:\[0\])?=>([a-z_]+)\)\s*=`)
)

// checkContract checks the raw template against the sidecar's contract and
// the Kamailio config. It returns every problem found.
func checkContract(cfg string, ct contract) []string {
	var p []string
	set := func(re *regexp.Regexp, s string) map[string]bool {
		r := map[string]bool{}
		for _, m := range re.FindAllStringSubmatch(s, -1) {
			r[m[1]] = true
		}
		return r
	}
	keys := func(m map[string]bool) []string {
		var r []string
		for k := range m {
			r = append(r, k)
		}
		sort.Strings(r)
		return r
	}
	want := map[string]bool{}
	for _, q := range ct.queryParams {
		want[q] = true
	}

	// HTTP: the URL built for rest_get
	var url strings.Builder
	for _, l := range strings.Split(cfg, "\n") {
		if strings.Contains(l, "pv_printf($var(tg_url)") {
			url.WriteString(l + "\n")
		}
	}
	if !strings.Contains(url.String(), `"TOLLGATE_URL`+ct.checkPath+`?`) {
		p = append(p, fmt.Sprintf("the rest_get URL does not start with TOLLGATE_URL%s?", ct.checkPath))
	}
	if got := set(reURLParam, url.String()); fmt.Sprint(keys(got)) != fmt.Sprint(keys(want)) {
		p = append(p, fmt.Sprintf("HTTP query parameters %v, the handler reads %v", keys(got), keys(want)))
	}
	// JSON-RPC: the params object
	if got := set(reRPCField, cfg); fmt.Sprint(keys(got)) != fmt.Sprint(keys(want)) {
		p = append(p, fmt.Sprintf("JSON-RPC params %v, the handler reads %v", keys(got), keys(want)))
	}
	if !strings.Contains(cfg, `jsonrpc_request("TOLLGATE_RPC", "`+ct.rpcMethod+`", $json(tgq),`) {
		p = append(p, fmt.Sprintf("jsonrpc_request does not call method %q on TOLLGATE_RPC", ct.rpcMethod))
	}
	// every response field read exists; the ones acted on are read
	read := set(reJSONRead, cfg)
	for f := range read {
		if !ct.responseFields[f] {
			p = append(p, fmt.Sprintf("config reads response field %q, which the sidecar does not emit", f))
		}
	}
	for _, f := range []string{"verdict", "reason", "code", "sip_code", "sip_reason", "max_channels", "max_cps", "account_max_channels", "account_max_cps"} {
		if !read[f] {
			p = append(p, "config does not read response field "+f)
		}
	}
	// every action is handled, and the HTTP statuses accepted are theirs
	for a, status := range ct.actions {
		if !strings.Contains(cfg, `$var(tg_verdict) == "`+a+`"`) {
			p = append(p, "verdict "+a+" not handled")
		}
		if !strings.Contains(cfg, fmt.Sprintf("$var(tg_rcode) == %d", status)) {
			p = append(p, fmt.Sprintf("HTTP status %d of %s not accepted", status, a))
		}
	}
	// a screened call is handled as Kamailio handles it: the reason headers
	// added to the INVITE, record-routed and relayed to SCREEN_URI
	reDuScreen := regexp.MustCompile(`\$du\s*=\s*"?SCREEN_URI"?\s*;`)
	for name, src := range map[string]string{"OpenSIPS": cfg, "Kamailio": ct.kam} {
		b := verdictBranch(src, "screen")
		switch {
		case b == "":
			p = append(p, name+": no screen branch")
		case !reDuScreen.MatchString(b):
			p = append(p, name+": a screened call is not sent to SCREEN_URI")
		case strings.Contains(b, "UPSTREAM") || strings.Contains(b, "send_reply") || strings.Contains(b, "append_to_reply"):
			p = append(p, name+": a screened call goes to the carrier or is answered by the proxy")
		case !strings.Contains(b, "append_hf(") || !strings.Contains(b, "X-Tollgate-Reason: $var(tg_reason)") ||
			!strings.Contains(b, "X-Tollgate-Code: $var(tg_code)"):
			p = append(p, name+": a screened INVITE lacks the reason headers")
		case !strings.Contains(b, "record_route()") || !strings.Contains(b, "route(RELAY)"):
			p = append(p, name+": a screened call is not record-routed and relayed")
		}
	}
	// headers shared with Kamailio
	for _, h := range []string{"X-Tollgate-Reason: $var(tg_reason)", "X-Tollgate-Code: $var(tg_code)", "X-Tollgate-Subaccount", "Retry-After: "} {
		if !strings.Contains(cfg, h) {
			p = append(p, "missing "+h)
		}
	}
	for _, h := range []string{"X-Tollgate-Reason", "X-Tollgate-Code", "X-Tollgate-Subaccount", "Retry-After"} {
		if !strings.Contains(ct.kam, h) {
			p = append(p, "the Kamailio config no longer has "+h+": re-check this test")
		}
	}
	if k, o := keys(set(reKam503, ct.kam)), keys(set(reOS503, cfg)); fmt.Sprint(k) != fmt.Sprint(o) || len(k) == 0 {
		p = append(p, fmt.Sprintf("503 reason phrases differ: Kamailio %q, OpenSIPS %q", k, o))
	}
	if k, o := keys(set(reTGReason, ct.kam)), keys(set(reTGReason, cfg)); fmt.Sprint(k) != fmt.Sprint(o) || len(k) == 0 {
		p = append(p, fmt.Sprintf("proxy-made X-Tollgate-Reason values differ: Kamailio %q, OpenSIPS %q", k, o))
	}
	for r := range set(reTGReason, cfg) {
		for _, info := range matcher.Reasons {
			if info.Name == r {
				p = append(p, "proxy-made X-Tollgate-Reason "+r+" collides with a tollgate reason")
			}
		}
	}
	// call events: the members the handler reads, the same as Kamailio's, to
	// the handler's events path and JSON-RPC method
	events := map[string]bool{}
	for _, f := range ct.eventFields {
		events[f] = true
	}
	osEv, kamEv := set(reOSEvent, cfg), set(reKamEvent, ct.kam)
	if strings.Contains(ct.kam, `jansson_set("obj", "dialog", "$var(tg_dlg)", "$var(tg_ev)")`) {
		kamEv["dialog"] = true
	}
	// Kamailio builds its events as JSON text in one pass (pv_printf and
	// mq_add formats): the members named in those lines, the dialog's tags
	// being inside its "dialog" object
	for _, l := range strings.Split(ct.kam, "\n") {
		if strings.Contains(l, `pv_printf("$dlg_var(tg_ev)"`) || strings.Contains(l, `pv_printf("$avp(tg_evx)"`) ||
			strings.Contains(l, `mq_add("tgev"`) {
			for _, m := range reKamJSONMember.FindAllStringSubmatch(l, -1) {
				if m[1] != "from_tag" && m[1] != "to_tag" {
					kamEv[m[1]] = true
				}
			}
		}
	}
	for f := range osEv {
		if !events[f] {
			p = append(p, fmt.Sprintf("call event member %q is not one the handler reads (%v)", f, ct.eventFields))
		}
	}
	if fmt.Sprint(keys(osEv)) != fmt.Sprint(keys(kamEv)) || len(osEv) == 0 {
		p = append(p, fmt.Sprintf("call event members differ: Kamailio %v, OpenSIPS %v", keys(kamEv), keys(osEv)))
	}
	for _, need := range []string{"event", "call_id", "account"} {
		if !osEv[need] {
			p = append(p, "call events lack the required member "+need)
		}
	}
	if !strings.Contains(cfg, `rest_post("TOLLGATE_URL`+ct.eventsPath+`", $json(tgw)`) {
		p = append(p, "call events are not POSTed (in the token wrapper) to TOLLGATE_URL"+ct.eventsPath)
	}
	if !strings.Contains(cfg, `jsonrpc_notification("TOLLGATE_RPC", "`+ct.eventMethod+`", $json(tgw))`) {
		p = append(p, fmt.Sprintf("call events are not JSON-RPC notifications of method %q (in the token wrapper)", ct.eventMethod))
	}
	if !strings.Contains(ct.kam, `"`+ct.eventsPath+`", "application/json"`) || !strings.Contains(ct.kam, `janssonrpc_notification("tollgate", "`+ct.eventMethod+`"`) {
		p = append(p, "the Kamailio config no longer sends call events the way this test expects: re-check it")
	}
	// the events token: the wrapper the handler reads, from the
	// EVENTS_TOKEN setting, around the event, in both configs
	if !strings.Contains(cfg, `$json(tgw/`+ct.eventsToken+`) = "EVENTS_TOKEN";`) {
		p = append(p, "call events do not carry the EVENTS_TOKEN in member "+ct.eventsToken)
	}
	if !strings.Contains(cfg, `$json(tgw/`+ct.eventsList+`) := $json(tge);`) {
		p = append(p, "the call event is not in the wrapper's member "+ct.eventsList)
	}
	if !strings.Contains(ct.kam, `pv_printf("$var(tg_batch)", "{\"`+ct.eventsToken+`\":$def(EVENTS_TOKEN),\"`+ct.eventsList+`\":[$var(tg_batch)]}");`) {
		p = append(p, "the Kamailio config no longer wraps its events with EVENTS_TOKEN the way this test expects: re-check it")
	}
	// account-wide caps: both levels enforced, the account-wide one on the
	// account name across subaccounts, checked and set under one lock
	for _, need := range []string{
		`rl_check("cps_$avp(tg_acct)/*", $var(tg_acps), "TAILDROP")`,
		`get_profile_size("tg_all", $avp(tg_acct), $var(tg_n))`,
		`if ($var(tg_n) >= $var(tg_achans)) {`,
		`set_dlg_profile("tg_all", $avp(tg_acct));`,
		`rl_check("cps_$var(tg_scope)", $var(tg_cps), "TAILDROP")`,
		`if ($var(tg_n) >= $var(tg_chans)) {`,
	} {
		if !strings.Contains(cfg, need) {
			p = append(p, "account-wide or scope caps not enforced: missing "+need)
		}
	}
	caps := cfg[strings.Index(cfg, "route[CAPS]"):]
	if l, u := strings.Count(caps[:strings.Index(caps, "\n}\n")], "get_dynamic_lock($avp(tg_acct))"), strings.Count(caps[:strings.Index(caps, "\n}\n")], "release_dynamic_lock($avp(tg_acct))"); l != 1 || u != 3 {
		p = append(p, fmt.Sprintf("the channel caps are not checked and set under the account's lock (%d locks, %d releases; want 1 and 3)", l, u))
	}
	for _, need := range []string{`pl_check("$avp(tg_acct)/*"`, `get_profile_size("tg_all", "$avp(tg_acct)"`, `set_dlg_profile("tg_all", "$avp(tg_acct)")`} {
		if !strings.Contains(ct.kam, need) {
			p = append(p, "the Kamailio config no longer enforces account-wide caps the way this test expects ("+need+"): re-check it")
		}
	}
	for _, v := range []string{`"answered"`, `"ended"`} {
		if !strings.Contains(cfg, `$var(tg_evkind) = `+v) {
			p = append(p, "no "+v+" call event")
		}
	}

	// teardowns: each call event names its proxy, and the dialog carries
	// what tollgate's RPC to that kind of proxy needs (Kamailio:
	// dlg.terminate_dlg Call-ID from-tag to-tag; OpenSIPS: dlg_end_dlg with
	// the dialog id for a Call-ID that reads as one); with WITH_CONTROL the
	// control interface is served where the README says
	dlgFields := map[string]bool{}
	for _, f := range ct.dialogFields {
		dlgFields[f] = true
	}
	for name, got := range map[string]map[string]bool{"OpenSIPS": set(reOSDialog, cfg), "Kamailio": set(reKamDialog, ct.kam)} {
		for f := range got {
			if !dlgFields[f] {
				p = append(p, fmt.Sprintf("%s: dialog member %q is not one the handler reads (%v)", name, f, ct.dialogFields))
			}
		}
	}
	if od := set(reOSDialog, cfg); !od["id"] || !strings.Contains(cfg, "$json(tge/dialog/id) = $DLG_did;") {
		p = append(p, "call events do not carry the dialog id ($DLG_did) dlg_end_dlg needs")
	}
	if kd := set(reKamDialog, ct.kam); !kd["from_tag"] || !kd["to_tag"] {
		p = append(p, "the Kamailio config no longer reports the dialog tags dlg.terminate_dlg needs: re-check this test")
	}
	if !strings.Contains(cfg, `$json(tge/proxy) = "PROXY_ID";`) || !strings.Contains(ct.kam, "$xavp(tge[0]=>proxy) = PROXY_ID;") {
		p = append(p, "call events do not name the proxy (PROXY_ID) in both configs")
	}
	for _, m := range []string{`"dlg_end_dlg"`, `"dialog_id"`, `"dlg.terminate_dlg"`} {
		if !strings.Contains(ct.teardown, m) {
			p = append(p, "teardown/teardown.go no longer sends "+m+": re-check this test")
		}
	}
	if ctl, err := expand(cfg, map[string]string{"WITH_CONTROL": ""}); err != nil {
		p = append(p, "WITH_CONTROL: "+err.Error())
	} else {
		for _, need := range []string{`loadmodule "httpd.so"`, `loadmodule "mi_http.so"`, `loadmodule "dialog.so"`,
			`modparam("mi_http", "root", "mi")`, `modparam("httpd", "ip", "127.0.0.1")`, `modparam("httpd", "port", 8888)`} {
			if !strings.Contains(ctl, need) {
				p = append(p, "WITH_CONTROL: no "+need)
			}
		}
	}
	if ctl, err := expand(cfg, map[string]string{"WITH_CONTROL": "", "WITH_PROMETHEUS": ""}); err == nil &&
		(strings.Count(ctl, `modparam("httpd", "port"`) != 1 || !strings.Contains(ctl, `modparam("httpd", "port", 8888)`)) {
		p = append(p, "WITH_CONTROL with WITH_PROMETHEUS: httpd must listen once, on the control socket")
	}

	// the proxy metrics deploy/prometheus/tollgate-alerts.yml reads, under
	// the same names (after the proxy's prefix) and labels in both configs
	for _, m := range []struct{ name, label string }{{"tollgate_auth_failures", "ip"}, {"tollgate_bans", "cause"}} {
		if !strings.Contains(ct.kam, "name="+m.name+"; label="+m.label+";") {
			p = append(p, "the Kamailio config no longer exports "+m.name+"{"+m.label+"}: re-check this test")
		}
		if !strings.Contains(cfg, `prometheus_declare_stat("opensips_`+m.name+`"`) || !strings.Contains(cfg, `"`+m.label+`", $var(tg_key)`) {
			p = append(p, "no metric opensips_"+m.name+"{"+m.label+"}")
		}
	}

	// same switches and settings as Kamailio, same defaults where they mean the same
	ksw, osw := set(reKamIfdef, ct.kam), set(reM4Ifdef, cfg)
	delete(osw, "MPATH")
	// Kamailio's own plumbing, no call behaviour: its ctl socket for kamcmd
	// and whether its TCP processes run (kamailio/README.md)
	delete(ksw, "CTL_SOCKET")
	delete(ksw, "WITH_TCP")
	// Kamailio's benchmark cases (benchsip), no deployment's switch
	delete(ksw, "BENCH_TRACK")
	if fmt.Sprint(keys(ksw)) != fmt.Sprint(keys(osw)) {
		p = append(p, fmt.Sprintf("switches differ: Kamailio %v, OpenSIPS %v", keys(ksw), keys(osw)))
	}
	kdef := map[string]string{}
	for _, m := range reKamTrydef.FindAllStringSubmatch(ct.kam, -1) {
		kdef[m[1]] = strings.Trim(strings.TrimSpace(m[2]), `"`)
	}
	odef := map[string]string{}
	for _, m := range reTrydef.FindAllStringSubmatch(cfg, -1) {
		odef[m[1]] = m[2] + m[3]
	}
	for _, s := range []string{"LISTEN", "TOLLGATE_URL", "TOLLGATE_RPC", "TOLLGATE_TIMEOUT", "TOLLGATE_RPC_TIMEOUT_MS",
		"UPSTREAM", "SCREEN_URI", "EMERGENCY_URI", "RETRY_AFTER", "PIKE_REQS", "PIKE_WINDOW", "BAN_SECONDS",
		"AUTH_MAX_FAILS", "AUTH_FAIL_WINDOW", "DBURL", "TRUNK_GROUP", "AUTH_REALM", "EMERGENCY_RE", "EVENTS_TOKEN"} {
		kv, kok := kdef[s]
		ov, ook := odef[s]
		switch {
		case !kok:
			p = append(p, "the Kamailio config has no setting "+s+": re-check this test")
		case !ook:
			p = append(p, "no setting "+s+" (Kamailio has it)")
		case s != "DBURL" && kv != ov:
			p = append(p, fmt.Sprintf("default of %s: Kamailio %q, OpenSIPS %q", s, kv, ov))
		}
	}
	return p
}

func combos() []map[string]string {
	var r []map[string]string
	for mask := 0; mask < 1<<len(switches); mask++ {
		d := map[string]string{}
		for i, s := range switches {
			if mask&(1<<i) != 0 {
				d[s] = ""
			}
		}
		r = append(r, d)
	}
	return r
}

func name(d map[string]string) string {
	var k []string
	for s := range d {
		k = append(k, s)
	}
	sort.Strings(k)
	if len(k) == 0 {
		return "defaults"
	}
	return strings.Join(k, "+")
}

func settingsOf(cfg string) []string {
	var s []string
	for _, m := range reTrydef.FindAllStringSubmatch(cfg, -1) {
		s = append(s, m[1])
	}
	return s
}

// TestContract: the config speaks the sidecar's current query API and
// mirrors the Kamailio config.
func TestContract(t *testing.T) {
	ct := loadContract(t)
	cfg := readFile(t, "opensips.cfg")
	for _, p := range checkContract(cfg, ct) {
		t.Error(p)
	}
}

// TestExpandedConfigs: every switch combination expands to a config with
// balanced structure, loaded modules for every modparam and call, the
// parameters each module needs, and defined routes.
func TestExpandedConfigs(t *testing.T) {
	cfg := readFile(t, "opensips.cfg")
	settings := settingsOf(cfg)
	if len(settings) < 15 {
		t.Fatalf("only %d TRYDEF settings found", len(settings))
	}
	for _, d := range combos() {
		out, err := expand(cfg, d)
		if err != nil {
			t.Errorf("%s: expand: %v", name(d), err)
			continue
		}
		for _, p := range checkExpanded(out, settings) {
			t.Errorf("%s: %s", name(d), p)
		}
	}
	// an override reaches every use
	out, err := expand(cfg, map[string]string{"UPSTREAM": "sip:198.51.100.7:5060", "WITH_IPAUTH": ""})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "127.0.0.1:5090") || strings.Count(out, `"sip:198.51.100.7:5060"`) < 2 {
		t.Error("-DUPSTREAM does not reach every relay to the upstream (and the emergency default)")
	}
}

// annotate adds the line annotations OpenSIPS 3.x puts in the flattened
// config before piping it to the -p preprocessor (cfg_pp.c).
func annotate(src string) string {
	var b strings.Builder
	b.WriteString("__OSSPP_FILEBEGIN__ \"opensips.cfg\"\n")
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		fmt.Fprintf(&b, "__OSSPP_LINE__ %d\n%s\n", n, sc.Text())
	}
	b.WriteString("__OSSPP_FILEEND__\n")
	return b.String()
}

func normalize(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "__OSSPP_") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// TestRealM4: with GNU m4 installed, "m4 -P" (what OpenSIPS runs for -p)
// gives the same config as this test's expander for every combination, and
// keeps OpenSIPS's line annotations at the start of their own lines.
func TestRealM4(t *testing.T) {
	m4, err := exec.LookPath("m4")
	if err != nil {
		t.Skip("GNU m4 not installed (apt-get install m4); the expander-based tests still ran")
	}
	src := readFile(t, "opensips.cfg")
	for _, d := range combos() {
		args := []string{"-P"}
		for k := range d {
			args = append(args, "-D"+k)
		}
		cmd := exec.Command(m4, args...)
		cmd.Stdin = strings.NewReader(annotate(src))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("%s: m4 -P: %v %s", name(d), err, stderr.String())
			continue
		}
		for i, l := range strings.Split(string(got), "\n") {
			if j := strings.Index(l, "__OSSPP_"); j > 0 {
				t.Errorf("%s: output line %d has a line annotation glued to text: %q", name(d), i+1, l)
			}
		}
		want, err := expand(src, d)
		if err != nil {
			t.Fatal(err)
		}
		if normalize(string(got)) != normalize(want) {
			t.Errorf("%s: m4 -P and the test expander disagree", name(d))
		}
	}
}

// verdictBranch is the body of a config's `if ($var(tg_verdict) == "v") {`
// block ("" when there is none), braces matched.
func verdictBranch(cfg, v string) string {
	i := strings.Index(cfg, `if ($var(tg_verdict) == "`+v+`") {`)
	if i < 0 {
		return ""
	}
	start := strings.IndexByte(cfg[i:], '{') + i + 1
	depth := 1
	for j := start; j < len(cfg); j++ {
		switch cfg[j] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return cfg[start:j]
			}
		}
	}
	return ""
}

// TestChecksCanFail: each check fires on the mistake it is there for.
func TestChecksCanFail(t *testing.T) {
	ct := loadContract(t)
	cfg := readFile(t, "opensips.cfg")
	settings := settingsOf(cfg)
	contractMutations := map[string][2]string{
		"renamed response field": {"$json(tgv/max_cps)", "$json(tgv/max_cps_per_second)"},
		"renamed query param":    {"&call_id=", "&callid="},
		"renamed RPC param":      {"$json(tgq/src_ip)", "$json(tgq/source_ip)"},
		"wrong path":             {"/v1/check?to=", "/v2/check?to="},
		"wrong RPC method":       {`"TOLLGATE_RPC", "check"`, `"TOLLGATE_RPC", "verdict"`},
		"other 503 phrase":       {`"CPS Limit Exceeded"`, `"Too Many Calls"`},
		"renamed header":         {"X-Tollgate-Code: $var(tg_code)", "X-Tollgate-Cause: $var(tg_code)"},
		"screen not handled":     {`$var(tg_verdict) == "screen"`, `$var(tg_verdict) == "screened"`},
		"202 not accepted":       {"$var(tg_rcode) == 202", "$var(tg_rcode) == 201"},
		"screen to the carrier":  {`$du = "SCREEN_URI";`, `$du = "UPSTREAM";`},
		"screen answered":        {"append_hf(\"X-Tollgate-Reason: $var(tg_reason)\\r\\nX-Tollgate-Code: $var(tg_code)\\r\\n\");\n\t\t$du = \"SCREEN_URI\";", "append_hf(\"X-Tollgate-Reason: $var(tg_reason)\\r\\nX-Tollgate-Code: $var(tg_code)\\r\\n\");\n\t\tsend_reply(480, \"Screening\");\n\t\t$du = \"SCREEN_URI\";"},
		"screen unrouted":        {"$du = \"SCREEN_URI\";\n\t\trecord_route();", "$du = \"SCREEN_URI\";"},
		"different default":      {"[[BAN_SECONDS]], [[300]]", "[[BAN_SECONDS]], [[600]]"},
		"renamed event member":   {"$json(tge/call_id)", "$json(tge/callid)"},
		"wrong events path":      {`"TOLLGATE_URL/v1/events"`, `"TOLLGATE_URL/v1/event"`},
		"wrong event method":     {`"TOLLGATE_RPC", "event"`, `"TOLLGATE_RPC", "events"`},
		"renamed metric":         {`"opensips_tollgate_auth_failures"`, `"opensips_tollgate_authfail"`},
		"events without token":   {`launch(rest_post("TOLLGATE_URL/v1/events", $json(tgw)`, `launch(rest_post("TOLLGATE_URL/v1/events", $json(tge)`},
		"RPC events sans token":  {`"event", $json(tgw));`, `"event", $json(tge));`},
		"token not set":          {`$json(tgw/token) = "EVENTS_TOKEN";`, `$json(tgw/token) = "";`},
		"token member renamed":   {`$json(tgw/token) =`, `$json(tgw/auth) =`},
		"event not wrapped":      {`$json(tgw/events) := $json(tge);`, `$json(tgw/event) := $json(tge);`},
		"account cap not read":   {"$json(tgv/account_max_channels)", "$json(tgv/account_channels)"},
		"account CPS not read":   {"$json(tgv/account_max_cps)", "$json(tgv/max_cps)"},
		"account CPS unenforced": {`rl_check("cps_$avp(tg_acct)/*"`, `rl_check("cps_$var(tg_scope)/*"`},
		"account cap per scope":  {`get_profile_size("tg_all", $avp(tg_acct)`, `get_profile_size("tg_all", $var(tg_scope)`},
		"account cap not set":    {"\t\tif ($var(tg_achans) > 0)\n\t\t\tset_dlg_profile(\"tg_all\", $avp(tg_acct));\n", ""},
		"account cap ignored":    {"if ($var(tg_n) >= $var(tg_achans)) {", "if ($var(tg_n) > $var(tg_achans) + 1000000) {"},
		"lock per scope":         {"get_dynamic_lock($avp(tg_acct));", "get_dynamic_lock($var(tg_scope));"},
		"lock left held":         {"\t\t\t\trelease_dynamic_lock($avp(tg_acct));\n\t\t\t\txlog(\"L_NOTICE\", \"tollgate: account-wide", "\t\t\t\txlog(\"L_NOTICE\", \"tollgate: account-wide"},
		"other default token":    {"[[EVENTS_TOKEN]], [[]]", "[[EVENTS_TOKEN]], [[changeme-0123456789]]"},
		"renamed dialog member":  {"$json(tge/dialog/id)", "$json(tge/dialog/did)"},
		"no dialog id":           {"$json(tge/dialog/id) = $DLG_did;", "$json(tge/dialog/id) = $ci;"},
		"no proxy id":            {`$json(tge/proxy) = "PROXY_ID";`, `$json(tge/proxy_name) = "PROXY_ID";`},
		"no MI over HTTP":        {`loadmodule "mi_http.so"`, `loadmodule "mi_fifo.so"`},
		"MI elsewhere":           {`modparam("mi_http", "root", "mi")`, `modparam("mi_http", "root", "json")`},
		"control on the metrics": {`modparam("httpd", "port", CONTROL_PORT)`, `modparam("httpd", "port", PROM_PORT)`},
	}
	for what, m := range contractMutations {
		if !strings.Contains(cfg, m[0]) {
			t.Errorf("%s: %q not in the config; update the mutation", what, m[0])
			continue
		}
		if len(checkContract(strings.ReplaceAll(cfg, m[0], m[1]), ct)) == 0 {
			t.Errorf("%s: not detected", what)
		}
	}
	structMutations := map[string][2]string{
		"missing modparam":      {`modparam("cfgutils", "lock_pool_size", 64)`, ""},
		"undefined route":       {"route(TG_UNAVAILABLE);", "route(TG_DOWN);"},
		"unbalanced brace":      {"route[RELAY] {", "route[RELAY] {{"},
		"unterminated string":   {`send_reply(404, "Not Here");`, `send_reply(404, "Not Here);`},
		"function of no module": {"pike_check_req()", "pike_check()"},
		"module not loaded":     {`loadmodule "ratelimit.so"`, ""},
		"undeclared profile":    {`get_profile_size("tg_sub"`, `get_profile_size("tg_subacct"`},
		"leftover setting":      {`socket=LISTEN`, `socket=LISTEN_ADDR`},
		"async to nowhere":      {", TG_HTTP_REPLY);", ", TG_HTTP_ANSWER);"},
		"callback to nowhere":   {`dlg_on_hangup("TG_DLG_HUNGUP")`, `dlg_on_hangup("TG_DLG_GONE")`},
		"undeclared tg_all":     {`"tg_acct;tg_sub;tg_all"`, `"tg_acct;tg_sub"`},
	}
	for what, m := range structMutations {
		if !strings.Contains(cfg, m[0]) {
			t.Errorf("%s: %q not in the config; update the mutation", what, m[0])
			continue
		}
		out, err := expand(strings.ReplaceAll(cfg, m[0], m[1]), nil)
		if err != nil {
			continue // detected by the expander
		}
		s := settings
		if what == "leftover setting" {
			s = append(s, "LISTEN_ADDR")
		}
		if len(checkExpanded(out, s)) == 0 {
			t.Errorf("%s: not detected", what)
		}
	}
	// the expander refuses broken m4
	last := strings.LastIndex(cfg, "]])")
	if _, err := expand(cfg[:last]+cfg[last+3:], nil); err == nil {
		t.Error("unterminated m4 quote not detected")
	}
}

// TestExamples: the shipped db_text tables are well-formed, the address rows
// carry an account tag in the trunk group, and the example subscriber's
// hashes are those of the password the README documents.
func TestExamples(t *testing.T) {
	addr := strings.Split(strings.TrimSpace(readFile(t, filepath.Join("dbtext", "address"))), "\n")
	if !strings.HasPrefix(addr[0], "id(int,auto) grp(int) ip(string) mask(int) port(int) proto(string) pattern(string,null) context_info(string,null)") {
		t.Errorf("address header is not the 3.6 address table (version 5): %q", addr[0])
	}
	if len(addr) < 2 {
		t.Error("address table has no example row")
	}
	for _, row := range addr[1:] {
		f := strings.Split(row, ":")
		if len(f) != 8 || f[1] != "1" || f[7] == "" || len(f[7]) > 32 {
			t.Errorf("address row %q: want 8 fields, group 1 (TRUNK_GROUP), a context_info account tag of at most 32 characters", row)
		}
	}
	ver := readFile(t, filepath.Join("dbtext", "version"))
	if !strings.Contains(ver, "\naddress:5\n") || !strings.Contains(ver, "\nsubscriber:") {
		t.Errorf("version table lacks address:5 or subscriber: %q", ver)
	}
	sub := strings.Split(strings.TrimSpace(readFile(t, filepath.Join("dbtext", "subscriber"))), "\n")
	cols := strings.Fields(sub[0])
	idx := map[string]int{}
	for i, c := range cols {
		idx[c[:strings.IndexByte(c, '(')]] = i
	}
	for _, c := range []string{"username", "domain", "password", "ha1", "ha1_sha256", "ha1_sha512t256"} {
		if _, ok := idx[c]; !ok {
			t.Fatalf("subscriber table has no %s column", c)
		}
	}
	readme := readFile(t, "README.md")
	for _, row := range sub[1:] {
		f := strings.Split(row, ":")
		if len(f) != len(cols) {
			t.Fatalf("subscriber row %q has %d fields, header %d", row, len(f), len(cols))
		}
		user := f[idx["username"]]
		pw := regexp.MustCompile("user `" + regexp.QuoteMeta(user) + "`, password `([^`]+)`").FindStringSubmatch(readme)
		if pw == nil {
			t.Fatalf("README does not document the example password of %s", user)
		}
		in := []byte(user + ":tollgate:" + pw[1])
		if got, want := f[idx["ha1"]], fmt.Sprintf("%x", md5.Sum(in)); got != want {
			t.Errorf("%s ha1 %s, want %s", user, got, want)
		}
		if got, want := f[idx["ha1_sha256"]], fmt.Sprintf("%x", sha256.Sum256(in)); got != want {
			t.Errorf("%s ha1_sha256 %s, want %s", user, got, want)
		}
		if got, want := f[idx["ha1_sha512t256"]], fmt.Sprintf("%x", sha512.Sum512_256(in)); got != want {
			t.Errorf("%s ha1_sha512t256 %s, want %s", user, got, want)
		}
	}
}

// TestREADMECodes: the README's codes table lists every verdict reason with
// its current code and SIP answer.
func TestREADMECodes(t *testing.T) {
	readme := readFile(t, "README.md")
	for _, r := range matcher.Reasons {
		row := fmt.Sprintf("| `%s` | %d | %d %s |", r.Name, r.Code, r.SIPCode, r.SIPReason)
		if !strings.Contains(readme, row) {
			t.Errorf("README codes table lacks %q", row)
		}
	}
}

// TestCallEventsSwitch: WITHOUT_CALL_EVENTS takes the event routes off the
// dialog and says so at start-up; without it every tracked call has both.
func TestCallEventsSwitch(t *testing.T) {
	cfg := readFile(t, "opensips.cfg")
	for _, tc := range []struct {
		defs   map[string]string
		events bool
	}{
		{map[string]string{}, true},
		{map[string]string{"WITH_JSONRPC": ""}, true},
		{map[string]string{"WITHOUT_CALL_EVENTS": ""}, false},
		{map[string]string{"WITHOUT_CALL_EVENTS": "", "WITH_JSONRPC": "", "WITH_CONTROL": ""}, false},
	} {
		out, err := expand(cfg, tc.defs)
		if err != nil {
			t.Fatalf("%s: %v", name(tc.defs), err)
		}
		hooks := strings.Contains(out, `dlg_on_answer("TG_DLG_ANSWERED");`) && strings.Contains(out, `dlg_on_hangup("TG_DLG_HUNGUP");`)
		logged := strings.Contains(out, "tollgate: call events are off")
		if hooks != tc.events || logged == tc.events || !strings.Contains(out, "create_dialog();") {
			t.Errorf("%s: event hooks %v, start-up line %v, want hooks %v", name(tc.defs), hooks, logged, tc.events)
		}
	}
}
