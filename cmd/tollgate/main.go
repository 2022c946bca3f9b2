// Command tollgate is the toll-fraud sidecar: a SIP proxy asks it once per
// outbound INVITE whether an account may call a number, and operators manage
// the policy through its admin API. `tollgate check` answers the same
// question at a shell.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/handler"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
)

// Files tollgate keeps in the data dir besides the store.
const (
	tokenFile = "admin.token"
	runFile   = "tollgate.run.json"
)

func main() {
	if c := findCommand(os.Args[1:]); c != nil {
		os.Exit(c.run(os.Args[2:], os.Stdout, os.Stderr))
	}
	for _, a := range os.Args[1:] {
		if a == "-version" || a == "--version" {
			os.Exit(runVersion(nil, os.Stdout, os.Stderr))
		}
	}
	if len(os.Args) > 1 && os.Args[1] == "fleet" {
		os.Exit(runFleet(os.Args[2:], os.Stdout, os.Stderr))
	}
	if err := serve(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

// config is the daemon's flags.
type config struct {
	queryAddr, adminAddr, rpcAddr string
	queryLoop                     string
	dataDir                       string
	adminToken, adminTokenFile    string
	eventsToken                   string
	highRiskFile                  string
	rateDeckFile                  string
	webhookURLs, webhookSecret    string
	geoipDB                       string
	maxCallDuration               time.Duration
	unconfirmedCap                time.Duration
	velocityInterval              time.Duration
	stateInterval                 time.Duration
	gcPercent                     int
	memoryLimit                   int
	recentSize                    int
	recentMaxAge, recentFlush     time.Duration
	logFormat, logLevel           string
	logNumbers                    bool
	logRejectBurst                int
	logRejectInterval             time.Duration
	drainDelay, shutdownTimeout   time.Duration
	maxConns, maxConnsPerSource   int
	proxySources                  string
	rpcIdleTimeout                time.Duration
	initDataDir                   bool
	quarantineDamaged             bool
	proxies                       []teardown.Proxy
	teardownTimeout               time.Duration
	teardownAttempts              int
	teardownOnSpend               bool
	fleet                         fleet.Config
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("tollgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.queryAddr, "query-addr", "127.0.0.1:8080", "query API (HTTP) listen address")
	fs.StringVar(&c.queryLoop, "query-loop", "fasthttp", "query listener transport: fasthttp (goroutine per connection), or epoll (Linux only: event loops, one per core but one, serving GET/POST /v1/check and /rpc, handing any other request to fasthttp)")
	fs.StringVar(&c.adminAddr, "admin-addr", "127.0.0.1:8081", "admin API listen address")
	fs.StringVar(&c.rpcAddr, "rpc-addr", "127.0.0.1:8082", "JSON-RPC over TCP listen address (netstrings and bare JSON)")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "directory of the data file, the generated admin token and the run file")
	fs.StringVar(&c.adminToken, "admin-token", "", "admin bearer token (at least 16 characters), or a comma-separated list of name:token (names: 1-15 letters, digits, - or _); generated and stored in the data dir if empty")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "", "file of admin tokens, one token or name:token per line (keeps them off the command line)")
	fs.StringVar(&c.eventsToken, "events-token", "", "token call events must carry (Authorization: Bearer, or {\"token\",\"events\"}), or a comma-separated list of name:token; without one, events are accepted from the loopback only")
	fs.StringVar(&c.highRiskFile, "high-risk-file", "", "high-risk prefix CSV; when set it is authoritative and reloaded on SIGHUP")
	fs.StringVar(&c.rateDeckFile, "rate-deck-file", "", "rate deck CSV (prefix,rate_per_minute,currency); when set it is authoritative and reloaded on SIGHUP")
	fs.StringVar(&c.geoipDB, "geoip-db", "", "MaxMind-format country database (.mmdb) for the origin checks; reloaded on SIGHUP and when the file changes")
	fs.StringVar(&c.webhookURLs, "webhook-url", "", "comma-separated http(s) URLs every alert is POSTed to, signed with -webhook-secret")
	fs.StringVar(&c.webhookSecret, "webhook-secret", "", "HMAC-SHA256 key of the X-Tollgate-Signature header of webhook POSTs (required with -webhook-url)")
	fs.DurationVar(&c.maxCallDuration, "max-call-duration", 4*time.Hour, "a call with no end event is taken as ended after this long")
	fs.DurationVar(&c.unconfirmedCap, "unconfirmed-call-cap", 0, "a call whose end never came is booked from its answer to when it was last heard of, or for at least this long (0: only what was heard; at most -max-call-duration)")
	recentFlags(fs, c)
	fs.DurationVar(&c.stateInterval, "state-flush-interval", time.Second, "how often the fraud state (counters, spend, live calls, alerts, webhook queue) is written to the data file: what a kill -9 can lose")
	fs.DurationVar(&c.velocityInterval, "velocity-interval", 250*time.Millisecond, "how often the velocity rules are evaluated (the delay of an automatic lockdown)")
	fs.IntVar(&c.gcPercent, "gc-percent", 25, "once the policy is loaded, the garbage collector's GOGC: how far (in percent of the live heap) the heap may grow before a collection")
	fs.IntVar(&c.memoryLimit, "memory-limit", 0, "once the policy is loaded, a soft limit in MiB on the Go runtime's memory (heap, stacks, runtime metadata; not the recent-traffic ring or the binary): the garbage collector runs more often as it nears the limit, using up to half the CPU; 0 = none (the GOMEMLIMIT environment variable, if set, stays in force)")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.logNumbers, "log-numbers", false, "log the full dialled number of rejected calls (default: masked)")
	fs.IntVar(&c.logRejectBurst, "log-reject-burst", handler.DefaultLogBurst, "refused-call log lines per account, subaccount and reason every -log-reject-interval; the rest are counted (0: log every one)")
	fs.DurationVar(&c.logRejectInterval, "log-reject-interval", handler.DefaultLogInterval, "the window of -log-reject-burst and of the suppressed-lines summary")
	fs.DurationVar(&c.drainDelay, "drain-delay", time.Second, "on SIGTERM, how long /ready reports 503 before the listeners close")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.IntVar(&c.maxConns, "max-conns", 0, "most connections each of the query and RPC listeners holds (0: sized from the open-file limit, at most 4096)")
	fs.IntVar(&c.maxConnsPerSource, "max-conns-per-source", 0, "most connections one address outside -proxy-sources holds on a listener (0: an eighth of the listener's cap)")
	fs.StringVar(&c.proxySources, "proxy-sources", "127.0.0.0/8,::1", "comma-separated addresses or CIDR prefixes of the SIP proxies: they may use the reserved eighth of each listener's connections")
	fs.DurationVar(&c.rpcIdleTimeout, "rpc-idle-timeout", handler.DefaultRPCIdleTimeout, "close a JSON-RPC TCP connection with no request for this long")
	fs.BoolVar(&c.initDataDir, "init-data-dir", false, "create a new, empty data file in a data dir that has held state and lost its data file (refused if a data file exists); a fresh, empty data dir needs no flag")
	fs.BoolVar(&c.quarantineDamaged, "quarantine-damaged", false, "start even if some accounts' stored records are damaged: those accounts are refused (account_quarantined) until written again; damaged operator settings, high-risk list or rate deck still refuse the start")
	fs.Bool("version", false, "print the version and exit (also `tollgate version`)")
	proxyControl := fs.String("proxy-control", "", "control interfaces of the proxies, comma-separated id=kind:url (kind kamailio or opensips), e.g. edge1=kamailio:http://127.0.0.1:5071/RPC; a lockdown ends the live international calls through the proxy each call's events name (off when empty)")
	fs.DurationVar(&c.teardownTimeout, "teardown-timeout", 2*time.Second, "how long one request to a proxy's control interface may take")
	fs.IntVar(&c.teardownAttempts, "teardown-attempts", 4, "requests per call before a teardown is given up (and alerted)")
	fs.BoolVar(&c.teardownOnSpend, "teardown-on-spend", false, "also end live international calls when a daily spend limit is reached with action \"alert\" (with \"lockdown\" they always are)")
	c.fleet.RegisterFlags(fs)
	fs.Usage = func() {
		commandsUsage(stderr)
		fmt.Fprintf(stderr, "\ndaemon flags (every flag can also be set as TOLLGATE_<NAME>, e.g. TOLLGATE_QUERY_ADDR; a flag on the command line wins):\n\n")
		fs.PrintDefaults()
	}
	if err := parseWithEnv(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: not a command (%s; see tollgate -h)", fs.Arg(0), commandNames())
	}
	if c.maxCallDuration < time.Minute || c.maxCallDuration > 7*24*time.Hour {
		return nil, fmt.Errorf("-max-call-duration %v: want between 1m and 168h", c.maxCallDuration)
	}
	if c.velocityInterval < 10*time.Millisecond || c.velocityInterval > time.Minute {
		return nil, fmt.Errorf("-velocity-interval %v: want between 10ms and 1m", c.velocityInterval)
	}
	if c.rpcIdleTimeout < time.Second || c.rpcIdleTimeout > time.Hour {
		return nil, fmt.Errorf("-rpc-idle-timeout %v: want between 1s and 1h", c.rpcIdleTimeout)
	}
	switch c.queryLoop {
	case "fasthttp":
	case "epoll":
		if !handler.QueryLoopSupported {
			return nil, fmt.Errorf("-query-loop epoll: needs Linux (epoll); use -query-loop fasthttp on %s", runtime.GOOS)
		}
	default:
		return nil, fmt.Errorf("-query-loop %q: want fasthttp or epoll", c.queryLoop)
	}
	if c.maxConns < 0 || c.maxConnsPerSource < 0 {
		return nil, errors.New("-max-conns and -max-conns-per-source must not be negative")
	}
	if _, err := parseSources(c.proxySources); err != nil {
		return nil, err
	}
	if c.unconfirmedCap < 0 || c.unconfirmedCap > c.maxCallDuration {
		return nil, fmt.Errorf("-unconfirmed-call-cap %v: want between 0 and -max-call-duration (%v)", c.unconfirmedCap, c.maxCallDuration)
	}
	if err := c.checkRecent(); err != nil {
		return nil, err
	}
	if c.stateInterval < 10*time.Millisecond || c.stateInterval > time.Minute {
		return nil, fmt.Errorf("-state-flush-interval %v: want between 10ms and 1m", c.stateInterval)
	}
	if _, err := eventTokens(c.eventsToken); err != nil {
		return nil, err
	}
	if c.gcPercent < 10 || c.gcPercent > 1000 {
		return nil, fmt.Errorf("-gc-percent %d: want between 10 and 1000", c.gcPercent)
	}
	if c.memoryLimit != 0 && (c.memoryLimit < 64 || c.memoryLimit > 1<<20) {
		return nil, fmt.Errorf("-memory-limit %d: want 0 (none) or between 64 and 1048576 MiB", c.memoryLimit)
	}
	var err error
	if c.proxies, err = teardown.ParseProxies(*proxyControl); err != nil {
		return nil, fmt.Errorf("-proxy-control: %w", err)
	}
	if c.teardownTimeout < 10*time.Millisecond || c.teardownTimeout > time.Minute {
		return nil, fmt.Errorf("-teardown-timeout %v: want between 10ms and 1m", c.teardownTimeout)
	}
	if c.teardownAttempts < 1 || c.teardownAttempts > 20 {
		return nil, fmt.Errorf("-teardown-attempts %d: want between 1 and 20", c.teardownAttempts)
	}
	if c.logRejectBurst < 0 {
		return nil, fmt.Errorf("-log-reject-burst %d: want 0 (no sampling) or more", c.logRejectBurst)
	}
	if c.logRejectInterval < time.Second || c.logRejectInterval > time.Hour {
		return nil, fmt.Errorf("-log-reject-interval %v: want between 1s and 1h", c.logRejectInterval)
	}
	if err := c.fleet.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

// eventTokens parses -events-token: name:token entries, a bare token named
// "events". A token is at least 16 characters of letters, digits and
// ._~+/=- (safe in a JSON string, a URL and a proxy config define).
func eventTokens(flagValue string) ([]handler.Token, error) {
	if flagValue == "" {
		return nil, nil
	}
	// The admin tokens' rules (unambiguous names, 16 characters, errors
	// that never quote a token), and a character set proxy configs and
	// JSON strings carry as they are.
	out, err := flagTokens("-events-token", flagValue, "events")
	if err != nil {
		return nil, err
	}
	for i, t := range out {
		for j := 0; j < len(t.Secret); j++ {
			c := t.Secret[j]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._~+/=-", c) >= 0) {
				return nil, fmt.Errorf("-events-token, entry %d: the token has a character outside letters, digits and ._~+/=-", i+1)
			}
		}
	}
	return out, nil
}

// loopbackAddr reports whether a listen address binds the loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseWithEnv parses args, then fills every flag not given on the command
// line from TOLLGATE_<UPPER_SNAKE> in the environment.
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

func envName(flagName string) string {
	return "TOLLGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func newLogger(format, level string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, fmt.Errorf("-log-format %q: want json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// adminTokens resolves the admin tokens: the flag's (name:token entries, a
// bare token named "admin") or the token file's, else the token file in the
// data dir, created with a fresh random token on first start. No token, and
// nothing that might be one, is ever logged.
func adminTokens(flagValue, file, dataDir string, log zerolog.Logger) ([]handler.Token, error) {
	switch {
	case flagValue != "" && file != "":
		return nil, errTwoTokenSources
	case flagValue != "":
		return flagTokens("-admin-token", flagValue, "admin")
	case file != "":
		return fileTokens(file)
	}
	path := filepath.Join(dataDir, tokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("%s is empty; delete it to have a new token generated", path)
		}
		if len(tok) < minTokenLen {
			return nil, fmt.Errorf("%s: the token is shorter than %d characters; delete the file to have a new one generated", path, minTokenLen)
		}
		log.Info().Str("token_file", path).Msg("admin token read from the data dir")
		return []handler.Token{{Name: "admin", Secret: tok}}, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	tok := hex.EncodeToString(raw[:])
	// Written whole under a temporary name and renamed: a full disk leaves
	// no token file rather than an empty one that blocks later starts.
	if err := store.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing the admin token: %w", err)
	}
	log.Warn().Str("token_file", path).Msg("admin token generated; read it from this file (it is not logged)")
	return []handler.Token{{Name: "admin", Secret: tok}}, nil
}

// runInfo is written to the data dir once the listeners are bound, so that
// `tollgate check` can ask the running daemon and tests can find ports
// chosen with :0. It holds no secret.
type runInfo struct {
	PID       int       `json:"pid"`
	QueryAddr string    `json:"query_addr"`
	AdminAddr string    `json:"admin_addr"`
	RPCAddr   string    `json:"rpc_addr"`
	Started   time.Time `json:"started"`
}

func writeRunInfo(dir string, ri runInfo) error {
	b, err := json.MarshalIndent(ri, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(filepath.Join(dir, runFile), append(b, '\n'), 0o644)
}

func serve(args []string) error {
	c, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(c.logFormat, c.logLevel, os.Stderr)
	if err != nil {
		return err
	}
	nofile, hardNofile, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("reading the open-file limit: %w", err)
	}
	qCap, rCap, aCap, err := connCaps(nofile, c.maxConns)
	if err != nil {
		return err
	}
	proxies, _ := parseSources(c.proxySources) // checked by parseFlags
	// The data file first: whether the data dir is fresh is decided before
	// anything (the token file) is written into it.
	st, err := store.Open(c.dataDir, store.Options{Timeout: 2 * time.Second, Init: c.initDataDir,
		Quarantine: c.quarantineDamaged, FreshOperator: store.FreshOperator()})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%w; another tollgate already serves this -data-dir", err)
		}
		return err
	}
	defer st.Close()
	if st.Created() {
		log.Warn().Str("data_file", st.Path()).Str("unknown_accounts", policy.UnknownReject).
			Msg("first start: created a new, empty data file; calls of accounts not created through the admin API are rejected")
	}
	for name, why := range st.Quarantined() {
		log.Error().Str("account", name).Str("damage", why).
			Msg("account quarantined (-quarantine-damaged): its stored records are damaged; every call is refused until it is written again")
	}
	tokens, err := adminTokens(c.adminToken, c.adminTokenFile, c.dataDir, log)
	if err != nil {
		return err
	}

	var hooks []string
	for _, u := range strings.Split(c.webhookURLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			hooks = append(hooks, u)
		}
	}
	// the fraud state (counters, spend, live calls, alerts, webhook queue)
	// is written behind, in batches: what a kill -9 loses is at most one
	// interval; SIGTERM loses nothing (a last flush after the listeners)
	state := fraudstate.NewWriter(st, fraudstate.Options{Interval: c.stateInterval, OnError: func(err error) {
		log.Error().Err(err).Msg("fraud state not written; kept for the next flush")
	}})
	alerts, err := alert.New(alert.Options{URLs: hooks, Secret: c.webhookSecret, Logger: log, Journal: state})
	if err != nil {
		return fmt.Errorf("-webhook-url: %w", err)
	}
	plan := numplan.Default()
	var m *matcher.Matcher
	// the engine's alerts go to the dispatcher, through the teardown when
	// proxies are configured (set below, before anything runs)
	// toAlerts is where alerts end: the dispatcher, or in fleet mode the
	// fleet's stream (startFleetState)
	toAlerts := &fleet.Switch{}
	toAlerts.Set(alerts)
	notify := &relay{next: toAlerts}
	vel := velocity.New(velocity.Options{
		MaxCallDuration: c.maxCallDuration,
		UnconfirmedCap:  c.unconfirmedCap,
		KeepState:       true,
		Interval:        c.velocityInterval,
		Notifier:        notify,
		Resolve: func(account, sub, to string) string {
			e164, _ := m.Destination(&matcher.Query{To: to, Account: account, Subaccount: sub})
			return e164
		},
		Price:    func(e164 string) (int64, bool) { return m.Snapshot().Rate(e164) },
		Currency: func() string { return m.Snapshot().Currency() },
	})
	geo := origin.NewGeoIP(c.geoipDB)
	if c.geoipDB != "" {
		if err := geo.Reload(); err != nil {
			return fmt.Errorf("-geoip-db: %w", err)
		}
		info := geo.Table().Info
		log.Info().Str("geoip_db", c.geoipDB).Str("type", info.DatabaseType).Time("built", info.BuildTime).
			Int("networks", info.Networks).Int("ranges", info.Ranges).Dur("load", info.LoadDuration).Msg("Geo-IP database loaded")
	} else {
		log.Warn().Msg("no Geo-IP database (-geoip-db): every origin is unknown; source address rules still apply")
	}
	orig := origin.NewChecker(geo, origin.NewState(origin.StateOptions{}))
	m = matcher.New(plan, matcher.Options{Velocity: vel, Origin: orig})
	var td *teardown.Teardown
	if len(c.proxies) > 0 {
		td, err = teardown.New(teardown.Options{Proxies: c.proxies, Calls: vel, Next: toAlerts, OnSpend: c.teardownOnSpend,
			Timeout: c.teardownTimeout, Attempts: c.teardownAttempts, Logger: log,
			Domestic: func(lc velocity.LiveCall) bool {
				if lc.To == "" || lc.Home == "" {
					return false
				}
				_, country := m.Destination(&matcher.Query{To: lc.To, Account: lc.Account, Subaccount: lc.Subaccount})
				return country == lc.Home
			}})
		if err != nil {
			return err
		}
		notify.next = td
		// a call that was ringing when its account was locked is ended when
		// its answer arrives
		vel.SetOnLockedAnswer(func(account, sub string) { td.Trigger(account, sub, "answered_while_locked") })
		td.Start() // closed below, before the alerts: its last alerts are delivered
		for _, p := range c.proxies {
			log.Info().Str("proxy", p.ID).Str("kind", p.Kind.String()).Str("url", p.URL).Msg("lockdowns end live international calls through this proxy")
		}
	}
	svc := service.New(m, plan, st, service.Options{HighRiskFile: c.highRiskFile, RateDeckFile: c.rateDeckFile, Velocity: vel, Origin: orig, Logger: log,
		FlushState: state.Flush})
	if err := svc.Load(); err != nil {
		return fmt.Errorf("loading policy: %w", err)
	}
	restored, err := fraudstate.Restore(st, state, [fraudstate.NumKinds]fraudstate.Loader{
		fraudstate.Scopes: vel.RestoreScope, fraudstate.Calls: vel.RestoreCall,
		fraudstate.Alerts: alerts.RestoreAlert, fraudstate.Webhooks: alerts.RestoreDelivery})
	if err != nil {
		return fmt.Errorf("loading fraud state: %w", err)
	}
	state.AddSource(vel)
	logRestored(log, restored)
	fleetPolicy, stopFleet, err := startFleet(c.fleet, svc, log)
	if err != nil {
		return err
	}
	defer stopFleet()
	fleetState, stopFleetState, err := startFleetState(fleetPolicy, vel, orig, alerts, toAlerts, log)
	if err != nil {
		return err
	}
	defer stopFleetState()
	defer svc.Flush() // before the store closes: assigned home countries are stored
	if orig.Degraded(m.Snapshot().OriginNeedsGeo()) {
		log.Error().Msg("origin rules read the origin country but there is no Geo-IP database (-geoip-db): every origin is unknown and gets " +
			"its geo profile's unknown action (screen by default; a country blocklist screens); /ready reports the origin checks degraded")
	}
	// Loading read the whole data file and decoded it into short-lived
	// garbage; hand both back so the daemon's RSS is its working set.
	if err := st.ReleaseMemory(); err != nil {
		log.Debug().Err(err).Msg("releasing the data file's pages")
	}
	debug.FreeOSMemory()
	// The policy is most of the heap, and it is long-lived; what a running
	// daemon allocates is mostly its admin writes' garbage (some tens of
	// kilobytes each). With the default
	// GOGC of 100 the heap would grow by as much as the whole policy before
	// a collection: 50 writes a second took RSS from 300 to 590 MiB with
	// 100,000 accounts. A lower GOGC keeps RSS near the live policy at the
	// cost of a collection every few seconds under a steady write load.
	debug.SetGCPercent(c.gcPercent)
	if c.memoryLimit > 0 {
		// Off by default: the live heap is the policy, whose size the
		// operator chooses, and a limit below it would keep the collector
		// running on the checks' CPU (docs/benchmarks.md, third pass).
		debug.SetMemoryLimit(int64(c.memoryLimit) << 20)
	}
	evTokens, _ := eventTokens(c.eventsToken) // checked by parseFlags
	if len(evTokens) == 0 && (!loopbackAddr(c.queryAddr) || !loopbackAddr(c.rpcAddr)) {
		log.Warn().Str("query_addr", c.queryAddr).Str("rpc_addr", c.rpcAddr).
			Msg("no -events-token: call events from proxies off the loopback are refused; set -events-token and EVENTS_TOKEN in the proxy config")
	}
	ring, stopRecent := startRecent(c, log)
	defer stopRecent() // after the listeners (deferred later, run earlier)
	h := handler.New(m, svc, handler.Options{Logger: log, LogNumbers: c.logNumbers, LogRejectBurst: c.logRejectBurst, LogRejectInterval: c.logRejectInterval, Tokens: tokens, Velocity: vel, Alerts: alerts, State: state,
		EventTokens: evTokens, MaxCallDuration: c.maxCallDuration, RPCIdleTimeout: c.rpcIdleTimeout,
		Teardown: td, Recent: ring, Fleet: fleetPolicy, FleetState: fleetState})
	velCtx, stopVelocity := context.WithCancel(context.Background())
	velDone := make(chan struct{})
	go func() { vel.Run(velCtx); close(velDone) }()
	stateCtx, stopState := context.WithCancel(context.Background())
	stateDone := make(chan struct{})
	go func() { state.Run(stateCtx); close(stateDone) }()
	geoStop := make(chan struct{})
	defer close(geoStop)
	if c.geoipDB != "" {
		go geo.Watch(30*time.Second, geoStop, func(t *origin.GeoTable, err error) { logGeo(log, "file changed", t, err) })
	}
	// Calling history older than a day says nothing about a location
	// change: forget it, keeping what is durable.
	go func() {
		tk := time.NewTicker(time.Hour)
		defer tk.Stop()
		for {
			select {
			case <-geoStop:
				return
			case <-tk.C:
				orig.State().Prune(24 * time.Hour)
			}
		}
	}()
	defer func() {
		// after the listeners: no more decisions or events to evaluate
		stopVelocity()
		<-velDone
		if td != nil {
			td.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
		defer cancel()
		alerts.Close(ctx)
		stopState()
		<-stateDone
		if err := state.Flush(); err != nil {
			log.Error().Err(err).Msg("fraud state not written at shutdown: the changes since the last flush are lost")
		} else {
			log.Info().Msg("fraud state written")
		}
	}()

	qln, err := net.Listen("tcp", c.queryAddr)
	if err != nil {
		return fmt.Errorf("-query-addr: %w", err)
	}
	aln, err := net.Listen("tcp", c.adminAddr)
	if err != nil {
		qln.Close()
		return fmt.Errorf("-admin-addr: %w", err)
	}
	rln, err := net.Listen("tcp", c.rpcAddr)
	if err != nil {
		qln.Close()
		aln.Close()
		return fmt.Errorf("-rpc-addr: %w", err)
	}
	qlim := h.Limit(qln, handler.ListenerQuery, listenerLimits(qCap, c.maxConnsPerSource, proxies))
	rlim := h.Limit(rln, handler.ListenerRPC, listenerLimits(rCap, c.maxConnsPerSource, proxies))
	alim := h.Limit(aln, handler.ListenerAdmin, listenerLimits(aCap, c.maxConnsPerSource, proxies))
	qs, as, rs := h.QueryServer(), h.AdminServer(), h.NewRPCServer()
	errc := make(chan error, 4)
	var loop *handler.QueryLoop
	if c.queryLoop == "epoll" {
		// The loop serves the checks; the fasthttp server every request it
		// hands over.
		loop, err = h.NewQueryLoop(qlim, qs)
		if err != nil {
			qln.Close()
			aln.Close()
			rln.Close()
			return fmt.Errorf("-query-loop epoll: %w", err)
		}
		go func() { errc <- qs.Serve(loop.Fallback()) }()
		go func() {
			if err := loop.Serve(); err != nil {
				errc <- err
			}
		}()
	} else {
		go func() { errc <- qs.Serve(qlim) }()
	}
	go func() { errc <- as.Serve(alim) }()
	go func() {
		if err := rs.Serve(rlim); err != nil && !errors.Is(err, handler.ErrServerClosed) {
			errc <- err
		}
	}()

	ri := runInfo{PID: os.Getpid(), QueryAddr: qln.Addr().String(), AdminAddr: aln.Addr().String(), RPCAddr: rln.Addr().String(), Started: time.Now().UTC()}
	if err := writeRunInfo(c.dataDir, ri); err != nil {
		log.Warn().Err(err).Msg("could not write the run file; `tollgate check` will not find this daemon")
	}
	defer os.Remove(filepath.Join(c.dataDir, runFile))
	hr, _ := svc.HighRiskInfo()
	_, rd, _ := svc.RateDeck()
	snap := m.Snapshot().Stats()
	log.Info().Str("query_addr", ri.QueryAddr).Str("admin_addr", ri.AdminAddr).Str("rpc_addr", ri.RPCAddr).
		Str("data_file", st.Path()).Int("accounts", snap.Accounts).
		Str("high_risk_origin", hr.Origin).Str("high_risk_version", hr.Version).Int("high_risk_entries", hr.Entries).
		Str("rate_deck_origin", rd.Origin).Int("rate_deck_entries", rd.Entries).Int("webhooks", len(hooks)).
		Int("lockdowns", len(vel.Locks())).Dur("compile", snap.BuildTime).
		Uint64("open_file_limit", nofile).Uint64("open_file_limit_hard", hardNofile).
		Int("max_conns_query", qlim.Limits().Max).Int("max_conns_rpc", rlim.Limits().Max).Int("max_conns_admin", alim.Limits().Max).
		Int("max_conns_per_source", qlim.Limits().PerSource).Str("query_loop", c.queryLoop).Msg("tollgate started")

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	for {
		select {
		case err := <-errc:
			log.Error().Err(err).Msg("listener failed; shutting down")
			shutdown(h, loop, qs, as, rs, 0, c.shutdownTimeout, log)
			return err
		case s := <-sig:
			if s == syscall.SIGHUP {
				if _, err := svc.Reload(); err != nil {
					log.Error().Err(err).Msg("SIGHUP reload refused")
				}
				if c.geoipDB != "" {
					err := geo.Reload()
					logGeo(log, "SIGHUP", geo.Table(), err)
				}
				continue
			}
			log.Info().Str("signal", s.String()).Dur("drain_delay", c.drainDelay).Msg("draining")
			shutdown(h, loop, qs, as, rs, c.drainDelay, c.shutdownTimeout, log)
			log.Info().Msg("stopped")
			return nil
		}
	}
}

// logRestored logs what the fraud state brought back at start.
func logRestored(log zerolog.Logger, r fraudstate.Restored) {
	ev := log.Info()
	refused := 0
	for k, name := range fraudstate.KindNames {
		ev = ev.Int(name, r.Loaded[k])
		refused += r.Refused[k]
	}
	if refused > 0 {
		ev = ev.Int("refused", refused).Strs("refused_first", r.Errors)
	}
	ev.Msg("fraud state restored")
}

// relay hands alerts to next; next is set before anything raises one.
type relay struct{ next alert.Notifier }

// Notify implements alert.Notifier.
func (r *relay) Notify(a alert.Alert) { r.next.Notify(a) }

// logGeo logs a Geo-IP database reload: the table now in force, or why the
// file was refused (the previous table keeps serving).
func logGeo(log zerolog.Logger, why string, t *origin.GeoTable, err error) {
	if err != nil {
		log.Error().Err(err).Str("trigger", why).Msg("Geo-IP database refused; the one in force keeps serving")
		return
	}
	if t != nil {
		log.Info().Str("trigger", why).Str("type", t.Info.DatabaseType).Time("built", t.Info.BuildTime).
			Int("ranges", t.Info.Ranges).Dur("load", t.Info.LoadDuration).Msg("Geo-IP database reloaded")
	}
}

// shutdown drains: /ready turns 503 for drainDelay so health checks move
// traffic away, then every listener stops accepting and waits for requests
// in flight (query first, admin last so no write is cut), within timeout.
func shutdown(h *handler.Handler, loop *handler.QueryLoop, qs, as *fasthttp.Server, rs *handler.RPCServer, drainDelay, timeout time.Duration, log zerolog.Logger) {
	h.SetDraining()
	time.Sleep(drainDelay)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if loop != nil {
		if err := loop.Shutdown(ctx); err != nil {
			log.Warn().Err(err).Msg("query loop did not drain in time")
		}
	}
	if err := qs.ShutdownWithContext(ctx); err != nil {
		log.Warn().Err(err).Msg("query listener did not drain in time")
	}
	if err := rs.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("rpc listener did not drain in time")
	}
	if err := as.ShutdownWithContext(ctx); err != nil {
		log.Warn().Err(err).Msg("admin listener did not drain in time")
	}
}
