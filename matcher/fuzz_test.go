package matcher

import (
	"testing"
)

// FuzzNormalize: any input yields digits or an invalid kind, never a panic,
// and accepted digits are exactly the input's digits.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+442079460958", "00 44 20", "(212) 555-0100", "%2B44", "tel:+1-212;x=y", "sip:1@h", "%", "%zz", "++1", "", "sips:", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var x dialled
		if k := normalize(s, &x); k != InvalidNone {
			if x.n > MaxDialled {
				t.Fatalf("overflow")
			}
			return
		}
		if x.n == 0 || x.n > MaxDialled {
			t.Fatalf("%q: %d digits accepted", s, x.n)
		}
		for _, c := range x.digits() {
			if c < '0' || c > '9' {
				t.Fatalf("%q: non-digit %q accepted", s, c)
			}
		}
	})
}

// FuzzDecide: any dialled string from any account yields a consistent
// verdict: an allowed or barred number has a country and an E.164 (or
// short) number, an invalid one has neither.
func FuzzDecide(f *testing.F) {
	m := newTestMatcher(f, testSet())
	for _, s := range []string{"+442079460958", "011 49 30 1234567", "07700 900123", "911", "abc", "+1 876 555 0123", "+8816", "0", "00", "+"} {
		f.Add(s, "acme")
		f.Add(s, "uk")
	}
	f.Fuzz(func(t *testing.T, to, account string) {
		v := m.Decide(&Query{To: to, Account: account})
		switch v.Reason {
		case ReasonInvalidNumber:
			if v.Action != Reject || v.Invalid == InvalidNone || len(v.E164Bytes()) != 0 {
				t.Fatalf("%q: inconsistent invalid verdict %+v", to, v)
			}
		case ReasonEmergency:
			if v.Action != Allow {
				t.Fatalf("%q: emergency not allowed", to)
			}
		default:
			if v.Country == "" || len(v.E164Bytes()) == 0 {
				t.Fatalf("%q: %s without country or number (%s)", to, v.Reason, v.RuleString())
			}
		}
		if len(v.RuleString()) == 0 {
			t.Fatalf("%q: empty rule", to)
		}
	})
}
