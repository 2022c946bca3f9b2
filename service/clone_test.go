package service

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

// Issue 11 item 15: GET /v1/operator encodes what Operator returns outside
// the service's lock while PUT /v1/operator/countries/{CC} validates the
// next settings, which canonicalises geo profiles and the source blocklist
// in place. The copy handed out used to share both, a data race the race
// detector reports here; and a caller editing its copy changed the settings
// in force, which fails here with or without -race.
func TestOperatorCopyDuringCountryChange(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	op := policy.Operator{
		GeoProfiles: map[string]policy.GeoProfile{
			"strict": {Zones: []policy.GeoZone{{Name: "home", Action: policy.OriginAllow, Countries: []string{"US", "CA"}}}, Unknown: policy.OriginReject},
		},
		SourceBlocklist: &policy.SourceBlocklist{CIDRs: []string{"192.0.2.0/24"}, Countries: []string{"KP"}},
		Default:         policy.Policy{Origin: &policy.Origin{Mobility: ptr(policy.MobilityRoaming)}},
	}
	if _, err := f.svc.PutOperator(admin, op); err != nil {
		t.Fatal(err)
	}
	before, err := f.svc.Operator()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(before) // bytes: a copy that shares nothing

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // GET /v1/operator
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := f.svc.Operator()
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := json.Marshal(got); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 50; i++ { // PUT and DELETE /v1/operator/countries/CU
		if _, _, err := f.svc.DisableCountry(admin, "CU", "test"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.EnableCountry(admin, "CU"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	// What a caller does with its copy stays its own.
	got, _ := f.svc.Operator()
	got.GeoProfiles["strict"].Zones[0].Countries[0] = "CU"
	got.GeoProfiles["lax"] = policy.GeoProfile{}
	got.SourceBlocklist.CIDRs[0] = "0.0.0.0/0"
	*got.Default.Origin.Mobility = policy.MobilityStationary
	again, _ := f.svc.Operator()
	if b, _ := json.Marshal(again); string(b) != string(want) {
		t.Errorf("editing a copy changed the settings in force:\n got %s\nwant %s", b, want)
	}
}
