package matcher

import (
	"fmt"
	"math/rand"
	"strconv"

	"github.com/tollgate/tollgate/policy"
)

// synthCodes are real calling codes, weighted towards the busy ones, used to
// build synthetic but plausible numbers and prefixes.
var synthCodes = []string{"1", "1", "1", "44", "44", "49", "33", "39", "34", "31", "46", "41", "61", "81", "86", "91", "7", "52", "55", "27", "234", "254", "255", "243", "225", "252", "53", "850", "881", "882", "371", "370", "372", "591", "675", "677", "678", "679", "880", "960"}

// synthNumber returns a random E.164 number (digits only) of plausible length.
func synthNumber(r *rand.Rand) string {
	cc := synthCodes[r.Intn(len(synthCodes))]
	n := 12 - len(cc) + r.Intn(2) - 1
	if cc == "1" {
		n = 10
	}
	b := []byte(cc)
	for i := 0; i < n; i++ {
		d := byte('0' + r.Intn(10))
		if i == 0 && d < '2' {
			d = '2' // avoid ranges no country owns, mostly
		}
		b = append(b, d)
	}
	return string(b)
}

// synthSet builds a policy with nAccounts accounts (a tenth with a
// subaccount) and nHighRisk unique high-risk prefixes, deterministically.
func synthSet(nAccounts, nHighRisk int, seed int64) *policy.Set {
	r := rand.New(rand.NewSource(seed))
	set := &policy.Set{Accounts: make(map[string]policy.Account, nAccounts)}
	homes := []string{"US", "GB", "DE", "FR", "AU", "CA", "NL", "ES"}
	for i := 0; i < nAccounts; i++ {
		home := homes[i%len(homes)]
		a := policy.Account{Policy: policy.Policy{HomeCountry: &home, MaxChannels: ip(10 + i%200), MaxCPS: ip(1 + i%20)}}
		switch i % 4 {
		case 0:
			a.Countries = &policy.CountryRule{Default: policy.Allow, Except: []string{"CU", "SO", "KP", "region:melanesia"}}
		case 1:
			a.Countries = &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:NA", "continent:EU"}}
		case 2:
			a.AllowPrefixes = lp("+4420", "+3314")
			a.BlockPrefixes = lp("+4470", "+88216")
		}
		if i%10 == 0 {
			a.Subaccounts = map[string]policy.Policy{"sub": {HighRisk: sp(policy.HighRiskAllow)}}
		}
		set.Accounts["acct-"+strconv.Itoa(i)] = a
	}
	seen := make(map[string]bool, nHighRisk)
	set.HighRisk = make([]policy.HighRiskEntry, 0, nHighRisk)
	for len(set.HighRisk) < nHighRisk {
		n := synthNumber(r)
		p := "+" + n[:4+r.Intn(5)]
		if seen[p] {
			continue
		}
		seen[p] = true
		set.HighRisk = append(set.HighRisk, policy.HighRiskEntry{Prefix: p, Country: "001", Category: "irsf", Source: fmt.Sprintf("synthetic %d", len(set.HighRisk)%7)})
	}
	return set
}
