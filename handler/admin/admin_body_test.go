package admin

import "testing"

func TestAdminBodyLimit(t *testing.T) {
	for uri, want := range map[string]int{
		"/v1/high-risk":                         MaxHighRiskBody,
		"/v1/high-risk?x=1":                     MaxHighRiskBody,
		"/v1/rate-deck":                         MaxRateDeckBody,
		"/v1/operator":                          MaxPolicyBody,
		"/v1/accounts/acme":                     MaxPolicyBody,
		"/v1/accounts/acme/subaccounts/s1":      MaxPolicyBody,
		"/v1/accounts/acme/lock":                MaxSmallBody,
		"/v1/accounts/acme/subaccounts/s1/lock": MaxSmallBody,
		"/v1/operator/countries/CU":             MaxSmallBody,
		"/v1/accounts/":                         MaxSmallBody,
		"//v1/high-risk":                        MaxSmallBody,
	} {
		if got := adminBodyLimit([]byte(uri)); got != want {
			t.Errorf("adminBodyLimit(%q) = %d, want %d", uri, got, want)
		}
	}
}
