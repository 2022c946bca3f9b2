package matcher

import (
	"strings"
	"testing"
)

func TestRoutingNumberParse(t *testing.T) {
	f := func(in, rn string, n int) {
		t.Helper()
		if got, gn := routingNumber(in); got != rn || gn != n {
			t.Errorf("routingNumber(%q) = %q %d, want %q %d", in, got, gn, rn, n)
		}
	}
	f("+14155550123", "", 0)
	f("+14155550123;npdi;rn=+5355512345", "+5355512345", 1)
	f("tel:+14155550123;rn=+5355512345;npdi", "+5355512345", 1)
	f("sip:+14155550123;npdi;rn=+5355512345@carrier.example;user=phone", "+5355512345", 1)
	f("sip:+14155550123@carrier.example;rn=+5355512345", "+5355512345", 1) // a URI parameter
	f("sip:+14155550123@carrier.example?X-rn=1;rn=+53", "", 0)             // headers are not parameters
	f("+14155550123;RN=+5355512345", "+5355512345", 1)
	f("+14155550123;R%6E=+5355512345", "+5355512345", 1)
	f("+14155550123; rn =+5355512345", "+5355512345", 1)
	f("+14155550123;rn=", "", 1)
	f("+14155550123;rn", "", 1)
	f("+14155550123;rn=+5355512345;rn=+14155550124", "+5355512345", 2)
	f("+14155550123;rn-context=+1;rnx=+53;xrn=+53;r n=+53", "", 0)
	f("+14155550123;phone-context=rn=+53", "", 0)
	f("rn=+5355512345", "", 0) // not a parameter
	f(strings.Repeat("1", 300)+";rn=+53", "", 0)
}

// Numbers carrying a routing number are decided on both (issue 11 item 11).
func TestDecideRoutingNumber(t *testing.T) {
	m := newTestMatcher(t, testSet())
	f := func(account, to string, reason Reason, by DecidedBy, e164, rn, rule string) {
		t.Helper()
		v := m.Decide(&Query{To: to, Account: account})
		if v.Reason != reason || v.DecidedBy != by || v.E164() != e164 || string(v.RNBytes()) != rn || !strings.Contains(v.RuleString(), rule) {
			t.Errorf("%s %q: %s by %q e164 %q rn %q (%s); want %s by %q e164 %q rn %q (…%s…)",
				account, to, v.Reason, v.DecidedBy, v.E164(), v.RNBytes(), v.RuleString(), reason, by, e164, rn, rule)
		}
	}
	// acme (home US) bars CU and SO.
	f("acme", "+14155550123;npdi;rn=+5355512345", ReasonCountryBarred, DecidedByRN, "+5355512345", "+5355512345", "routing number: account acme: countries allow-all-except; CU listed")
	f("acme", "sip:+14155550123;npdi;rn=+5355512345@h;user=phone", ReasonCountryBarred, DecidedByRN, "+5355512345", "+5355512345", "CU")
	f("acme", "tel:+14155550123;RN=%2B53-555-12345", ReasonCountryBarred, DecidedByRN, "+5355512345", "+5355512345", "CU")
	f("acme", "+14155550123;rn=011 53 555 12345", ReasonCountryBarred, DecidedByRN, "+5355512345", "+5355512345", "CU") // the account's IDD
	f("acme", "+14155550123;rn=4155550199", ReasonOK, DecidedByTo, "+14155550123", "+14155550199", "")                  // national format of home
	f("acme", "+14155550123;rn=+14155550123", ReasonOK, DecidedByTo, "+14155550123", "+14155550123", "")
	f("acme", "+5355512345;rn=+14155550123", ReasonCountryBarred, DecidedByTo, "+5355512345", "+14155550123", "account acme")
	f("acme", "+14155550123;rn=+447012345678", ReasonNumberBarred, DecidedByRN, "+447012345678", "+447012345678", "operator: prefix +4470")
	f("acme", "+14155550123;rn=+88213", ReasonInvalidNumber, DecidedByRN, "", "", "routing number: invalid number")
	// malformed, empty, repeated or short-code routing numbers are invalid
	f("acme", "+14155550123;rn=", ReasonInvalidNumber, DecidedByRN, "", "", "routing number (rn=)")
	f("acme", "+14155550123;npdi;rn", ReasonInvalidNumber, DecidedByRN, "", "", "routing number (rn=)")
	f("acme", "+14155550123;rn=+14155550124;rn=+5355512345", ReasonInvalidNumber, DecidedByRN, "", "", "given more than once")
	f("acme", "+14155550123;rn=abc", ReasonInvalidNumber, DecidedByRN, "", "", "not a digit")
	f("acme", "+14155550123;rn=911", ReasonInvalidNumber, DecidedByRN, "", "", "routing number (rn=)")
	// an emergency number with a routing number abroad is not waved through
	f("acme", "911;rn=+5355512345", ReasonCountryBarred, DecidedByRN, "+5355512345", "+5355512345", "CU")
	// none: no home country, deny-all; bare digits are E.164
	f("none", "+14155550123;rn=5355512345", ReasonCountryBarred, DecidedByTo, "+14155550123", "+5355512345", "")
	// no routing number: nothing changes
	f("acme", "+14155550123;npdi", ReasonOK, DecidedByNone, "+14155550123", "", "")
	f("acme", "+14155550123;rnx=+5355512345", ReasonOK, DecidedByNone, "+14155550123", "", "")
}

func TestDecideRoutingNumberAllocs(t *testing.T) {
	m := newTestMatcher(t, testSet())
	q := Query{To: "sip:+14155550123;npdi;rn=+5355512345@h", Account: "acme"}
	var buf [512]byte
	if n := testing.AllocsPerRun(100, func() {
		v := m.Decide(&q)
		_ = v.AppendRule(buf[:0])
	}); n != 0 {
		t.Fatalf("%v allocations per decision with a routing number", n)
	}
}

// FuzzRoutingNumber: any string yields a value that is a part of it, never a
// panic, and a routing number a decision then treats consistently.
func FuzzRoutingNumber(f *testing.F) {
	m := newTestMatcher(f, testSet())
	for _, s := range []string{"+14155550123;npdi;rn=+5355512345", "sip:1;rn=2@h;rn=3?rn=4", ";rn=", ";R%6e=1", "; rn ;rn", "%", ";r%", "tel:;;;@@??"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rn, n := routingNumber(s)
		if n == 0 && rn != "" || !strings.Contains(s, rn) {
			t.Fatalf("%q: rn %q n %d", s, rn, n)
		}
		v := m.Decide(&Query{To: s, Account: "acme"})
		if (n > 0) != (v.DecidedBy != DecidedByNone) {
			t.Fatalf("%q: %d rn, decided by %q", s, n, v.DecidedBy)
		}
		if n > 1 && v.Action != Reject {
			t.Fatalf("%q: repeated rn %s", s, v.Action)
		}
	})
}
