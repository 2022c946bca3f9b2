package store

import (
	"testing"

	"github.com/tollgate/tollgate/fraudstate"
)

// The fraud state's records are written a batch per transaction and read
// back after a reopen; a delete in a later batch removes the record.
func TestFraudStateRecords(t *testing.T) {
	s, dir := openTemp(t)
	var b fraudstate.Batch
	b.Put(fraudstate.Scopes, "acme", []byte(`{"spend":1}`))
	b.Put(fraudstate.Calls, "c1", []byte(`{"account":"acme"}`))
	b.Put(fraudstate.Webhooks, "w1", []byte(`{}`))
	b.Put(fraudstate.Alerts, "a1", []byte(`{}`))
	if err := s.WriteState(&b); err != nil {
		t.Fatal(err)
	}
	var d fraudstate.Batch
	d.Delete(fraudstate.Webhooks, "w1")
	d.Delete(fraudstate.Calls, "never-there")
	if err := s.WriteState(&d); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got := map[string]string{}
	for k := fraudstate.Kind(0); k < fraudstate.NumKinds; k++ {
		if err := ro.LoadState(k, func(key string, val []byte) error {
			got[fraudstate.KindNames[k]+"/"+key] = string(val)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"scopes/acme": `{"spend":1}`, "calls/c1": `{"account":"acme"}`, "alerts/a1": `{}`}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if err := ro.WriteState(&b); err == nil {
		t.Error("a read-only file took fraud state")
	}
}
