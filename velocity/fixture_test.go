package velocity

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// clock is the injected time of every test: nothing here sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// collector is a Notifier that keeps every alert.
type collector struct {
	mu     sync.Mutex
	alerts []alert.Alert
}

func (c *collector) Notify(a alert.Alert) {
	c.mu.Lock()
	c.alerts = append(c.alerts, a)
	c.mu.Unlock()
}

// take returns the alerts since the last take, as "type/level/kind" strings.
func (c *collector) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, a := range c.alerts {
		out = append(out, a.Type+"/"+a.Level+"/"+a.Kind)
	}
	c.alerts = nil
	return out
}

func (c *collector) last() alert.Alert {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.alerts) == 0 {
		return alert.Alert{}
	}
	return c.alerts[len(c.alerts)-1]
}

func (c *collector) all() []alert.Alert {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]alert.Alert(nil), c.alerts...)
}

type fixture struct {
	t     *testing.T
	e     *Engine
	m     *matcher.Matcher
	clk   *clock
	col   *collector
	mu    sync.Mutex
	locks []Lock
}

// monday10 is 2026-03-02 10:00 UTC, a Monday.
var monday10 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

var plan = numplan.Default()

func newFixture(t *testing.T, set *policy.Set) *fixture {
	t.Helper()
	f := &fixture{t: t, clk: &clock{t: monday10}, col: &collector{}}
	f.e = New(Options{
		KeepState: true,
		Now:       f.clk.Now,
		Notifier:  f.col,
		OnLock: func(l Lock) {
			f.mu.Lock()
			f.locks = append(f.locks, l)
			f.mu.Unlock()
		},
		Resolve: func(account, sub, to string) string {
			e164, _ := f.m.Destination(&matcher.Query{To: to, Account: account, Subaccount: sub})
			return e164
		},
		Price:    func(e164 string) (int64, bool) { return f.m.Snapshot().Rate(e164) },
		Currency: func() string { return f.m.Snapshot().Currency() },
	})
	f.m = matcher.New(plan, matcher.Options{Velocity: f.e})
	f.load(set)
	return f
}

// load compiles and installs a set, as the service does.
func (f *fixture) load(set *policy.Set) {
	f.t.Helper()
	snap, err := matcher.CompileFrom(f.m.Snapshot(), set, plan)
	if err != nil {
		f.t.Fatal(err)
	}
	f.m.Swap(snap)
	if err := f.e.Sync(set); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) call(account, sub, to string) matcher.Verdict {
	return f.m.Decide(&matcher.Query{To: to, Account: account, Subaccount: sub})
}

// calls places n calls and fails on any that is not allowed.
func (f *fixture) calls(n int, account, sub, to string) {
	f.t.Helper()
	for i := 0; i < n; i++ {
		if v := f.call(account, sub, to); v.Reason != matcher.ReasonOK {
			f.t.Fatalf("call %d of %d from %s to %s: %s %s", i+1, n, account, to, v.Reason, v.RuleString())
		}
	}
}

func (f *fixture) event(kind EventKind, id, account, sub, to string, dur time.Duration) Result {
	return f.e.Apply(Event{Kind: kind, CallID: id, Account: account, Subaccount: sub, To: to, Duration: dur})
}

func (f *fixture) eval() []string {
	f.e.Evaluate()
	return f.col.take()
}

func (f *fixture) expectAlerts(want ...string) {
	f.t.Helper()
	got := f.eval()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		f.t.Fatalf("alerts %v, want %v", got, want)
	}
}

func (f *fixture) measure(account, sub string, rule int, m string) int {
	f.t.Helper()
	st, err := f.e.State(account)
	if err != nil {
		f.t.Fatal(err)
	}
	sc := st.ScopeState
	if sub != "" {
		for _, s := range st.Subaccounts {
			if s.Subaccount == sub {
				sc = s
			}
		}
	}
	ms, ok := sc.Rules[rule].Measures[m]
	if !ok {
		f.t.Fatalf("%s/%s rule %d has no %s", account, sub, rule, m)
	}
	return ms.Value
}

func ptr[T any](v T) *T { return &v }

func th(w, c int) *policy.Threshold { return &policy.Threshold{Warning: w, Critical: c} }

// setWith is one account "acme" (home GB) with the given velocity, and a
// subaccount "sales"; plus "other" with none.
func setWith(v *policy.Velocity) *policy.Set {
	return &policy.Set{Accounts: map[string]policy.Account{
		"acme": {
			Policy:      policy.Policy{HomeCountry: ptr("GB"), Velocity: v},
			Subaccounts: map[string]policy.Policy{"sales": {}},
		},
		"other": {Policy: policy.Policy{HomeCountry: ptr("GB")}},
	}}
}

const (
	numFR  = "+33142685300"
	numFR2 = "+33142685301"
	numDE  = "+4930123456"
	numGB  = "+441614960000"
	numUS  = "+12125550100"
)

func numN(i int) string { return fmt.Sprintf("+3314268%04d", i) }
