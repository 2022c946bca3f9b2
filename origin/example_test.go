package origin_test

import (
	"fmt"
	"time"

	"github.com/tollgate/tollgate/origin"
)

// A stationary account at home in Germany, with a geo profile that screens
// Nigeria and a 30-minute location-change period. Without a Geo-IP database
// (as here) only address rules apply; with one (origin.OpenGeoIP), a call's
// country is looked up from its source address.
func Example() {
	op, err := origin.CompileOperator(origin.OperatorSpec{
		Profiles: map[string]origin.ProfileSpec{
			"std": {Zones: []origin.ZoneSpec{{Name: "watch", Action: "screen", Countries: []string{"NG"}}}},
		},
		BlockedSources: []string{"198.51.100.0/24"},
	})
	if err != nil {
		panic(err)
	}
	rules, err := op.Account(origin.AccountSpec{
		Profile: "std", Mobility: origin.Stationary, Home: "DE",
		ChangeMinutes: 30, TrustedSources: []string{"192.0.2.0/24"},
	})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := origin.NewState(origin.StateOptions{Now: func() time.Time { return now }})
	c := origin.NewChecker(nil, st)

	for _, ip := range []string{"192.0.2.10", "203.0.113.5", "198.51.100.7"} {
		o := c.Check(origin.Input{Account: "alice", SrcIP: ip, Rules: rules, DestCountry: "GB"})
		fmt.Printf("%s: %s %s (%s)\n", ip, o.Action, o.Kind, o.AppendText(nil))
	}
	// Output:
	// 192.0.2.10: allow  (source address among the account's trusted sources)
	// 203.0.113.5: reject untrusted_source (source address not among the account's trusted sources)
	// 198.51.100.7: reject source_blocked (source address on the operator's source blocklist)
}
