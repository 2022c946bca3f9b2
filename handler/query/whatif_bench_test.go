package query

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/whatif"
	"io"
)

// BenchmarkCheckGETWhatIf is BenchmarkCheckGET with the recent-traffic
// ring recording every query, alone and with a shadow policy that changes
// the account's countries (every query decided twice): the added ns of
// issue #16's hook on the HTTP check path, at 0 allocs.
func BenchmarkCheckGETWhatIf(b *testing.B) {
	uri := []byte("/v1/check?to=%2B12125551234&account=acme&src_ip=192.0.2.7")
	b.Run("none", func(b *testing.B) {
		benchCtx(b, benchHandler(b), "GET", uri, nil)
	})
	b.Run("ring", func(b *testing.B) {
		h := benchHandler(b)
		h.opt.Recent = recent.New(1<<16, 24*time.Hour)
		benchCtx(b, h, "GET", uri, nil)
	})
	b.Run("ring+shadow", func(b *testing.B) {
		h := benchHandler(b)
		h.opt.Recent = recent.New(1<<16, 24*time.Hour)
		live := h.m.Snapshot()
		var a policy.Account
		if err := json.Unmarshal([]byte(`{"home_country":"US","countries":{"default":"deny","except":["CA"]}}`), &a); err != nil {
			b.Fatal(err)
		}
		next, err := live.WithAccounts(map[string]*policy.Account{"acme": &a})
		if err != nil {
			b.Fatal(err)
		}
		h.Shadow.Store(whatif.NewShadow(next, live, zerolog.New(io.Discard), "bench", nil))
		benchCtx(b, h, "GET", uri, nil)
		if d := h.Shadow.Load().Stats().Disagreements.Load(); d == 0 {
			b.Fatal("the shadow never disagreed")
		}
	})
}
