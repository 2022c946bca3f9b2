package gen

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

func prefixes(es []policy.HighRiskEntry) string {
	var ps []string
	for _, e := range es {
		ps = append(ps, e.Prefix)
	}
	return strings.Join(ps, " ")
}

// Split moves rows naming whole countries to the recommended denies and
// keeps ranges, with the rules of docs/highrisk.md.
func TestSplit(t *testing.T) {
	in := []policy.HighRiskEntry{
		e("+4470", "GB", "irsf", "a range of GB"),
		e("+447624", "IM", "irsf", "one of the Isle of Man's four ranges"),
		e("+222", "MR", "irsf", "a calling code of its own"),
		e("+77", "KZ", "irsf", "all of Kazakhstan's leading digits under +7"),
		e("+18765", "JM", "irsf", "inside Jamaica's area code"),
		e("+1876", "JM", "irsf", "Jamaica"),
		e("+1658", "JM", "irsf", "Jamaica's overlay"),
	}
	ranges, countries, err := Split(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := prefixes(ranges); got != "+18765 +4470 +447624" {
		t.Errorf("ranges %s", got)
	}
	if got := prefixes(countries); got != "+1658 +1876 +222 +77" {
		t.Errorf("countries %s", got)
	}
	if got := Countries(countries); !reflect.DeepEqual(got, []string{"JM", "KZ", "MR"}) {
		t.Errorf("Countries = %v", got)
	}
	// Generate refuses a whole country: it is not a default block.
	if _, _, err := Generate(in); err == nil || !strings.Contains(err.Error(), "names a whole country") {
		t.Errorf("Generate with whole countries: %v", err)
	}
	for _, bad := range []policy.HighRiskEntry{
		e("+1", "US", "irsf", "all of NANP"),
		e("+7", "RU", "irsf", "RU and KZ"),
		e("+18", "DO", "irsf", "all of DO and more"),
		e("+1876", "DO", "irsf", "wrong country"),
		e("+1809", "DO", "irsf", "DO without 829, 849 and 8001"),
	} {
		if _, _, err := Split([]policy.HighRiskEntry{bad}); err == nil {
			t.Errorf("%s (%s) accepted", bad.Prefix, bad.Source)
		}
	}
}
