package admin

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

func list(n int, elem string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + "]"
}

func subs(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"s%d":{}`, i)
	}
	return b.String() + "}"
}

func TestCheckJSONSize(t *testing.T) {
	for _, c := range []struct{ name, body, field string }{
		{"small", `{"allow_prefixes":["+1"],"subaccounts":{"a":{"block_prefixes":["+53"]}}}`, ""},
		{"at the limit", `{"allow_prefixes":` + list(10000, `"+1"`) + `}`, ""},
		{"one over", `{"allow_prefixes":` + list(10001, `"+1"`) + `}`, "allow_prefixes"},
		{"nested", `{"subaccounts":{"a":{"block_prefixes":` + list(10001, `"+1"`) + `}}}`, "subaccounts.a.block_prefixes"},
		{"in an array", `{"rules":[{"days":` + list(10001, `"mon"`) + `}]}`, "rules[0].days"},
		{"subaccounts at the limit", `{"subaccounts":` + subs(1000) + `}`, ""},
		{"subaccounts over", `{"subaccounts":` + subs(1001) + `}`, "subaccounts"},
		{"a top-level array", list(10001, `1`), "body"},
		// refused as it streams: what follows the 10,001st entry is never read
		{"truncated after the limit", `{"allow_prefixes":` + list(10001, `"+1"`)[:10001*5] + `,`, "allow_prefixes"},
		{"not JSON", `{"a":`, ""},
	} {
		err := checkJSONSize([]byte(c.body))
		var fe *policy.FieldError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
			t.Errorf("%s: got %v, want an error on %s", c.name, err, c.field)
		}
	}
	var b strings.Builder
	b.WriteString(`{"subaccounts":{`)
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&b, `"s%d":{"allow_prefixes":%s},`, i, list(9000, `"+1"`))
	}
	err := checkJSONSize([]byte(b.String()))
	var fe *policy.FieldError
	if !errors.As(err, &fe) || fe.Field != "body" || !strings.Contains(fe.Msg, "250000") {
		t.Errorf("270,000 entries in all: %v", err)
	}
}

func FuzzCheckJSONSize(f *testing.F) {
	f.Add([]byte(`{"allow_prefixes":["+1"],"subaccounts":{"a":{"block_prefixes":["+53"]}}}`))
	f.Add([]byte(`[[[],{}],{"a":[1,2,{"b":null}]}]`))
	f.Add([]byte(`{"a":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkJSONSize(b)
		var fe *policy.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field == "") {
			t.Fatalf("error without a field: %v", err)
		}
	})
}
