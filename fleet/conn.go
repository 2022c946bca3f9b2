// Package fleet runs tollgate as one of a fleet: the policy's source of
// truth is a NATS JetStream key-value bucket that every node watches and
// applies through the same service path as a local admin write, with each
// node's bbolt file as its cache. Without -nats none of this runs and a
// tollgate is the single-machine sidecar it always was.
//
// conn.go holds the connection and its flags: the one place that dials
// NATS, so the policy (policy*.go) and the fleet state (state*.go,
// counters*, alerts*, origin*) share one connection and one node name.
package fleet

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultReplicas is the default of -nats-replicas: a 3-server cluster keeps
// every bucket and stream on all three, so one server down loses nothing.
const DefaultReplicas = 3

// Config is fleet mode's flags. The zero value (no URLs) is single-node
// mode: Enabled reports false and nothing dials NATS.
type Config struct {
	// URLs are the NATS servers (-nats), comma-separated on the command
	// line; any one of them reachable is enough, the client learns the rest.
	URLs string
	// Creds is a NATS credentials file (-nats-creds) for a secured cluster.
	Creds string
	// TLSCA is a PEM file of the CA that signed the servers' certificates
	// (-nats-tls-ca), for a cluster served over TLS.
	TLSCA string
	// Node names this tollgate in the fleet (-node); the hostname if empty.
	Node string
	// Replicas is how many servers keep each bucket and stream
	// (-nats-replicas): 3 for a 3-server cluster, 1 for a single server.
	Replicas int
}

// RegisterFlags adds the fleet flags to fs. The daemon's parseWithEnv then
// also reads them from TOLLGATE_NATS, TOLLGATE_NATS_CREDS,
// TOLLGATE_NATS_TLS_CA, TOLLGATE_NODE and TOLLGATE_NATS_REPLICAS.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URLs, "nats", "", "fleet mode: comma-separated NATS server URLs (nats://host:4222,...); the policy then lives in a JetStream bucket shared by every tollgate (off when empty)")
	fs.StringVar(&c.Creds, "nats-creds", "", "NATS credentials file (JWT and nkey seed) for a secured cluster")
	fs.StringVar(&c.TLSCA, "nats-tls-ca", "", "PEM file of the CA that signed the NATS servers' TLS certificates")
	fs.StringVar(&c.Node, "node", "", "this tollgate's name in the fleet (letters, digits, - and _; default the hostname)")
	fs.IntVar(&c.Replicas, "nats-replicas", DefaultReplicas, "how many NATS servers keep each fleet bucket and stream (1 for a single server, 3 or 5 for a cluster)")
}

// Enabled reports whether fleet mode is on (-nats given).
func (c *Config) Enabled() bool { return strings.TrimSpace(c.URLs) != "" }

// Check validates the flags and fills the node name from the hostname.
// Errors name the flag.
func (c *Config) Check() error {
	if !c.Enabled() {
		if c.Creds != "" || c.TLSCA != "" {
			return errors.New("-nats-creds and -nats-tls-ca need -nats")
		}
		return nil
	}
	for _, u := range strings.Split(c.URLs, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			return fmt.Errorf("-nats %q: an empty URL in the list", c.URLs)
		}
		if !strings.Contains(u, "://") {
			return fmt.Errorf("-nats %q: want URLs such as nats://127.0.0.1:4222", u)
		}
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("-nats-replicas %d: want between 1 and 5", c.Replicas)
	}
	for _, f := range []struct{ flag, path string }{{"-nats-creds", c.Creds}, {"-nats-tls-ca", c.TLSCA}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("-node not set and no hostname: %w", err)
		}
		c.Node = nodeName(h)
	}
	return ValidNode(c.Node)
}

// ValidNode checks a node name: it becomes a KV key and a subject token,
// so letters, digits, '-' and '_' only, at most 64 bytes.
func ValidNode(n string) error {
	if n == "" || len(n) > 64 {
		return fmt.Errorf("-node %q: want 1 to 64 letters, digits, - or _", n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("-node %q: character %q not allowed (letters, digits, - and _)", n, c)
		}
	}
	return nil
}

// nodeName turns a hostname into a node name: the first label, other
// characters as '-'.
func nodeName(host string) string {
	host, _, _ = strings.Cut(host, ".")
	b := []byte(host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// Conn is one tollgate's connection to the fleet: the NATS connection, its
// JetStream context, this node's name and the replica count every bucket
// and stream is created with. Everything in fleet mode takes a *Conn.
type Conn struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Node     string
	Replicas int

	log       zerolog.Logger
	mu        sync.Mutex
	onChange  []func(connected bool)
	connected atomic.Bool
	// downSince is when the connection was last lost (unix ns), 0 while up.
	downSince atomic.Int64
}

// Connect dials the fleet. It does not wait for a server: a node that
// starts while NATS is down serves its cached policy and connects when a
// server comes back (the client retries for ever), so Connect fails only
// on bad options (an unreadable creds or CA file).
func Connect(c Config, log zerolog.Logger) (*Conn, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	fc := &Conn{Node: c.Node, Replicas: c.Replicas, log: log.With().Str("node", c.Node).Logger()}
	fc.downSince.Store(time.Now().UnixNano())
	opts := []nats.Option{
		nats.Name("tollgate " + c.Node),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.Timeout(2 * time.Second),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(*nats.Conn) { fc.setConnected(true) }),
		nats.ReconnectHandler(func(*nats.Conn) { fc.setConnected(true) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { fc.setConnected(false, err) }),
		nats.ClosedHandler(func(*nats.Conn) { fc.setConnected(false) }),
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	nc, err := nats.Connect(strings.ReplaceAll(c.URLs, " ", ""), opts...)
	if err != nil {
		return nil, fmt.Errorf("-nats %s: %w", c.URLs, err)
	}
	fc.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	fc.JS = js
	if nc.IsConnected() {
		fc.setConnected(true)
	} else {
		fc.log.Warn().Str("nats", c.URLs).Msg("no NATS server reachable yet: serving the cached policy, admin writes refused until connected")
	}
	return fc, nil
}

// setConnected records a connection change, logs it once and tells the
// listeners (policy watcher, state publishers).
func (c *Conn) setConnected(up bool, err ...error) {
	if c.connected.Swap(up) == up {
		return
	}
	if up {
		c.downSince.Store(0)
		c.log.Info().Str("server", c.NC.ConnectedUrlRedacted()).Msg("connected to NATS")
	} else {
		c.downSince.Store(time.Now().UnixNano())
		ev := c.log.Warn()
		if len(err) > 0 && err[0] != nil {
			ev = ev.Err(err[0])
		}
		ev.Msg("lost NATS: serving the last applied policy, admin writes refused until reconnected")
	}
	c.mu.Lock()
	fns := append([]func(bool){}, c.onChange...)
	c.mu.Unlock()
	for _, f := range fns {
		f(up)
	}
}

// OnChange registers f to run (in the NATS client's goroutine; keep it
// short) whenever the connection comes up or goes down.
func (c *Conn) OnChange(f func(connected bool)) {
	c.mu.Lock()
	c.onChange = append(c.onChange, f)
	c.mu.Unlock()
}

// Connected reports whether a NATS server is reachable now.
func (c *Conn) Connected() bool { return c.connected.Load() }

// DownFor is how long the connection has been down (0 while up).
func (c *Conn) DownFor() time.Duration {
	ns := c.downSince.Load()
	if ns == 0 {
		return 0
	}
	return time.Since(time.Unix(0, ns))
}

// Close drains the connection: pending publishes go out, then it closes.
func (c *Conn) Close() {
	if c == nil || c.NC == nil {
		return
	}
	if err := c.NC.Drain(); err != nil {
		c.NC.Close()
	}
}

// NewConn wraps an existing NATS connection (tests, tools) as a Conn.
func NewConn(nc *nats.Conn, node string, replicas int) (*Conn, error) {
	if err := ValidNode(node); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	c := &Conn{NC: nc, JS: js, Node: node, Replicas: replicas, log: zerolog.Nop()}
	c.connected.Store(nc.IsConnected())
	return c, nil
}
