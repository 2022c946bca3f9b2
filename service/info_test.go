package service

import (
	"encoding/json"
	"testing"
	"time"
)

// The shipped list and a missing rate deck have no update time: "updated"
// is left out rather than printed as year 1; a real time is printed.
func TestInfoUpdatedOmittedWhenZero(t *testing.T) {
	f := func(v any, want string) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Fatalf("got  %s\nwant %s", b, want)
		}
	}
	at := time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)
	f(HighRiskInfo{Origin: "builtin", Version: "v1", Entries: 3},
		`{"origin":"builtin","version":"v1","source":"","entries":3}`)
	f(HighRiskInfo{Origin: "stored", Entries: 1, Updated: at},
		`{"origin":"stored","version":"","source":"","entries":1,"updated":"2026-11-22T07:00:00Z"}`)
	f(RateDeckInfo{Origin: OriginNone}, `{"origin":"none","entries":0}`)
	f(RateDeckInfo{Origin: "file", Currency: "USD", Entries: 2, Updated: at},
		`{"origin":"file","currency":"USD","entries":2,"updated":"2026-11-22T07:00:00Z"}`)
}
