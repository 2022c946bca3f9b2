package matcher

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

// Invented subaccount names (issue 11 item 9): with unknown_subaccounts
// "reject" they are refused (and counted as blocked attempts); by default
// they are decided under the account. Account-wide caps come with every
// verdict of the account, whatever its subaccount.
func TestUnknownSubaccountsAndAccountCaps(t *testing.T) {
	set := testSet()
	acme := set.Accounts["acme"]
	acme.UnknownSubaccounts = policy.UnknownSubReject
	acme.AccountMaxChannels, acme.AccountMaxCPS = 200, 30
	set.Accounts["acme"] = acme
	fv := newFakeVelocity()
	sc := fv.add("acme", "")
	fv.add("acme", "sales")
	m := newVelMatcher(t, set, fv)
	f := func(account, sub, to string, reason Reason, chans, cps, achans, acps int, rule string) {
		t.Helper()
		v := m.Decide(&Query{To: to, Account: account, Subaccount: sub})
		if v.Reason != reason || v.MaxChannels != chans || v.MaxCPS != cps || v.AccountMaxChannels != achans || v.AccountMaxCPS != acps ||
			!strings.Contains(v.RuleString(), rule) {
			t.Errorf("%s/%s %s: %s caps %d/%d account %d/%d (%s); want %s %d/%d %d/%d (…%s…)", account, sub, to,
				v.Reason, v.MaxChannels, v.MaxCPS, v.AccountMaxChannels, v.AccountMaxCPS, v.RuleString(), reason, chans, cps, achans, acps, rule)
		}
	}
	f("acme", "", "+14155550123", ReasonOK, 160, 20, 200, 30, "")
	f("acme", "sales", "+14155550123", ReasonOK, 160, 20, 200, 30, "")
	f("acme", "ships", "+14155550123", ReasonOK, 160, 2, 200, 30, "")
	f("acme", "s99", "+14155550123", ReasonUnknownSubaccount, 160, 20, 200, 30, `account acme: unknown subaccount "s99" refused (unknown_subaccounts=reject)`)
	f("acme", "SALES", "+14155550123", ReasonUnknownSubaccount, 160, 20, 200, 30, `"SALES"`) // names are exact
	f("acme", "s99", "911", ReasonEmergency, 160, 20, 200, 30, "")                           // emergency first
	f("uk", "s99", "+14155550123", ReasonOK, 0, 0, 0, 0, "")                                 // default: the account decides
	f("stranger", "s99", "+14155550123", ReasonOK, 0, 0, 0, 0, "")
	if got := strings.Join(sc.records, ","); got != "+14155550123 US 0,  1,  1" { // invented names are blocked attempts of the account
		t.Errorf("acme records %s", got)
	}
	// the setting is validated
	bad := testSet()
	b := bad.Accounts["acme"]
	b.UnknownSubaccounts = "known"
	bad.Accounts["acme"] = b
	if _, err := Compile(bad, m.Plan()); err == nil || !strings.Contains(err.Error(), "unknown_subaccounts") {
		t.Errorf("bad unknown_subaccounts: %v", err)
	}
	b.UnknownSubaccounts, b.AccountMaxCPS = "", -1
	bad.Accounts["acme"] = b
	if _, err := Compile(bad, m.Plan()); err == nil || !strings.Contains(err.Error(), "account_max_cps") {
		t.Errorf("bad account_max_cps: %v", err)
	}
}
