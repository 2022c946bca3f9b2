package velocity

import (
	"maps"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

// Velocity rules of a template apply to every account on it that sets
// none of its own (and, as always, not to subaccounts); an account's own
// rules replace the template's. Changing the template re-syncs exactly
// its accounts through SyncAccounts, as a full Sync would.
func TestTemplateVelocity(t *testing.T) {
	rules := func(n int) *policy.Velocity {
		return &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{CallsPerMinute: th(0, n)}}}
	}
	set := &policy.Set{
		Templates: map[string]policy.Template{"retail": {Policy: policy.Policy{Velocity: rules(5)}}},
		Accounts: map[string]policy.Account{
			"on":     {Template: "retail", Subaccounts: map[string]policy.Policy{"s": {}}},
			"own":    {Template: "retail", Policy: policy.Policy{Velocity: rules(7)}},
			"plain":  {Policy: policy.Policy{Velocity: rules(3)}},
			"nothin": {},
		},
	}
	e := New(Options{})
	if err := e.Sync(set); err != nil {
		t.Fatal(err)
	}
	th0 := func(e *Engine, account, sub string) int {
		t.Helper()
		s := e.exact(account, sub)
		if s == nil {
			t.Fatalf("no scope %s/%s", account, sub)
		}
		r := s.cfg.Load().rules
		if len(r) == 0 {
			return 0
		}
		crit := 0
		for _, x := range r[0].th {
			crit = max(crit, x.Critical)
		}
		return crit
	}
	for _, c := range []struct {
		account, sub string
		want         int
	}{{"on", "", 5}, {"on", "s", 0}, {"own", "", 7}, {"plain", "", 3}, {"nothin", "", 0}} {
		if got := th0(e, c.account, c.sub); got != c.want {
			t.Errorf("%s/%s: critical %d, want %d", c.account, c.sub, got, c.want)
		}
	}
	plainCfg := e.exact("plain", "").cfg.Load()

	next := *set
	next.Accounts = maps.Clone(set.Accounts)
	next.Templates = map[string]policy.Template{"retail": {Policy: policy.Policy{Velocity: rules(9)}}}
	if err := e.SyncAccounts(&next, []string{"on", "own"}); err != nil {
		t.Fatal(err)
	}
	if got := th0(e, "on", ""); got != 9 {
		t.Errorf("after the template change: critical %d, want 9", got)
	}
	if got := th0(e, "own", ""); got != 7 {
		t.Errorf("an account's own rules after the template change: %d, want 7", got)
	}
	if e.exact("plain", "").cfg.Load() != plainCfg {
		t.Error("an account off the template was re-synced")
	}
	full := New(Options{})
	if err := full.Sync(&next); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"on", "own", "plain", "nothin"} {
		if a, b := th0(e, n, ""), th0(full, n, ""); a != b {
			t.Errorf("%s: %d after SyncAccounts, %d after a full Sync", n, a, b)
		}
	}
}
