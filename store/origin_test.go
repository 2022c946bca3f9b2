package store

import (
	"encoding/json"
	"testing"
)

func TestOriginState(t *testing.T) {
	s, _ := openTemp(t)
	if m, err := s.Origin(); err != nil || len(m) != 0 {
		t.Fatalf("fresh origin state %v %v", m, err)
	}
	if _, err := s.Commit(&Change{
		Audit:  AuditEntry{Action: "screening", Object: "accounts/acme/screening"},
		Origin: map[string]json.RawMessage{"acme": json.RawMessage(`{"failed_screenings":1}`), "bob": json.RawMessage(`{"home":"DE"}`)},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(&Change{Audit: AuditEntry{Action: "x", Object: "y"}, Origin: map[string]json.RawMessage{"bob": nil}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(&Change{Audit: AuditEntry{Action: "x", Object: "y"}, Origin: map[string]json.RawMessage{"bad": json.RawMessage(`{`)}}); err == nil {
		t.Fatal("invalid JSON stored")
	}
	m, err := s.Origin()
	if err != nil || len(m) != 1 || string(m["acme"]) != `{"failed_screenings":1}` {
		t.Fatalf("%s %v", m, err)
	}
}
