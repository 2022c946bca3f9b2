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
