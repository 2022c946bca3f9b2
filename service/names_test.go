package service

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// TestLoadRefusesBadName: an account stored under a name the admin API
// cannot reach (".." could be written by tollgate import before the name
// rule refused it) stops the load, naming it, instead of being enforced
// but unmanageable.
func TestLoadRefusesBadName(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := denyAllBut("US")
	if _, err := st.Commit(&store.Change{Audit: store.AuditEntry{Action: "test"}, Accounts: map[string]*policy.Account{"..": &a}}); err != nil {
		t.Fatal(err)
	}
	svc := New(matcher.New(plan, matcher.Options{}), plan, st, Options{Logger: zerolog.Nop()})
	err = svc.Load()
	// The store's strict load refuses it first, naming the record.
	if err == nil || !strings.Contains(err.Error(), `accounts/".."`) {
		t.Fatalf("Load = %v, want a refusal naming the account", err)
	}
}
