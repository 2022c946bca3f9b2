package matcher

import (
	"testing"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// DecideBeside reuses an earlier verdict's resolution of the dialled
// number; it must decide exactly as DecideWith, for every kind of number,
// whether the account's home country is the same in both snapshots or not.
func TestDecideBesideEqualsDecideWith(t *testing.T) {
	plan := numplan.Default()
	operator := testSet() // same homes, operator-wide changes
	operator.Operator.DisabledCountries["FR"] = policy.DisabledCountry{Reason: "test"}
	operator.Operator.BlockedPrefixes = append(operator.Operator.BlockedPrefixes, policy.BlockedPrefix{Prefix: "+1212", Reason: "test"})
	operator.Operator.UnknownAccounts = policy.UnknownReject
	homes := testSet() // homes moved, added and dropped
	homes.Accounts["acme"] = policy.Account{Policy: policy.Policy{HomeCountry: sp("GB")}, Subaccounts: homes.Accounts["acme"].Subaccounts}
	homes.Accounts["uk"] = policy.Account{}
	homes.Accounts["none"] = policy.Account{Policy: policy.Policy{HomeCountry: sp("US")}}
	homes.Quarantined = map[string]string{"aus": "test"}
	var snaps []*Snapshot
	for _, set := range []*policy.Set{testSet(), operator, homes} {
		s, err := Compile(set, plan)
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	m := New(plan, Options{})
	m.Swap(snaps[0])

	accounts := [][2]string{{"acme", ""}, {"acme", "sales"}, {"acme", "ships"}, {"acme", "nosuch"}, {"nanp-only", ""},
		{"uk", ""}, {"aus", ""}, {"lv", ""}, {"none", ""}, {"stranger", ""}, {"", ""}}
	numbers := []string{
		"+442079460000", "+33142685300", "+5355512345", "+88216123456", "+447012345678", "+3712345678", "+85012345678", // E.164
		"00442079460000", "011442079460000", "0011442079460000", "00", // 00 / 011 / 0011
		"02079460000", "4155550123", "0412345678", "020 7946 0000", "01234", // national
		"+14155550123", "+12125550100", "14155550123", "+12125550100", "+11235550100", "+1415555012", // NANP
		"911", "112", "999", "000", "118118", "123", // emergency and short
		"", "+", "abc", "+99912345", "+4420794600001234567", "sip:+442079460000@h", // invalid and URIs
		"+14155550123;rn=+5355512345", "+14155550123;rn=", "+14155550123;rn=911", "4155550123;rn=+14155550199", // rn=
	}
	shared, total := 0, 0
	for _, acct := range accounts {
		for _, to := range numbers {
			q := Query{Account: acct[0], Subaccount: acct[1], To: to, SrcIP: "192.0.2.1"}
			for i, sa := range snaps {
				prev := m.DecideWith(sa, nil, false, &q)
				if i == 0 && prev != m.Decide(&q) {
					t.Fatalf("%+v: Decide and DecideWith differ", q)
				}
				for j, sb := range snaps {
					want := m.DecideWith(sb, nil, false, &q)
					a, _, _ := sb.lookup(&q)
					reuse := prev.res != resNone && prev.resHome == a.home && prev.resInfo == a.homeInfo
					h0, m0 := m.CacheStats()
					got := m.DecideBeside(sb, nil, false, &q, &prev)
					h1, m1 := m.CacheStats()
					total++
					if reuse {
						shared++
						if h1 != h0 || m1 != m0 {
							t.Errorf("%+v snapshots %d→%d: the shared path resolved the number again", q, i, j)
						}
					}
					if got != want {
						t.Errorf("%+v snapshots %d→%d (shared %v):\n got %+v\nwant %+v", q, i, j, reuse, got, want)
					}
				}
			}
		}
	}
	// the table must exercise both paths, the shared one for most queries
	if shared < total/3 || shared == total {
		t.Fatalf("shared path taken %d of %d times", shared, total)
	}
	t.Logf("shared path taken %d of %d times", shared, total)
}
