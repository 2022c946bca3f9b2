package velocity

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/policy"
)

// TestUnlockQuiet: an unlock applied from another fleet node lifts the
// lock and starts the same grace, without a second unlock alert.
func TestUnlockQuiet(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "daily", WindowMinutes: 1440, CallsPerWindow: th(0, 3)}}}
	f := newFixture(t, setWith(v))
	f.calls(4, "acme", "", numGB)
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")
	until := f.clk.Now().Add(time.Hour)
	if _, ok := f.e.UnlockQuiet("acme", "", "ops", "from n2", until); !ok {
		t.Fatal("not unlocked")
	}
	f.expectAlerts() // no unlock alert here: n2 raised it
	if _, locked := f.e.LockOf("acme", ""); locked {
		t.Fatal("still locked")
	}
	// the same grace as on the node that unlocked: it lapses and locks again
	f.clk.Add(time.Hour)
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")
}

// TestUnlockBeforeOwnCritical: a node that got another node's lockdown
// (and then the unlock) before its own evaluator saw the measure cross
// must not raise the same critical when the unlock lands — that re-locked
// the account on every fleet node right after an operator's unlock. The
// margin still holds: calls beyond it lock again.
func TestUnlockBeforeOwnCritical(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "daily", WindowMinutes: 1440, CallsPerWindow: th(0, 3)}}}
	f := newFixture(t, setWith(v))
	f.calls(4, "acme", "", numGB) // at critical, not evaluated yet
	f.e.RestoreLocks([]Lock{{Account: "acme", By: "tollgate"}})
	if _, ok := f.e.UnlockQuiet("acme", "", "ops", "from n3", time.Time{}); !ok {
		t.Fatal("not unlocked")
	}
	f.expectAlerts() // neither a critical nor a lockdown: the unlock holds
	if _, locked := f.e.LockOf("acme", ""); locked {
		t.Fatal("locked again by the critical the unlock covered")
	}
	f.calls(2, "acme", "", numGB) // 6: below the re-lock level 4+3
	f.expectAlerts()
	f.calls(1, "acme", "", numGB) // 7
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")
}
