package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// strictErr decodes doc into an Account and returns the FieldError.
func strictErr(t *testing.T, doc string) *FieldError {
	t.Helper()
	var a Account
	err := DecodeStrict([]byte(doc), &a)
	if err == nil {
		return nil
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: not a FieldError: %v", doc, err)
	}
	return fe
}

// Each document encoding/json accepts (last duplicate wins, keys folded to
// a field's case) is refused, naming the field path.
func TestDecodeStrictRefuses(t *testing.T) {
	cases := []struct {
		doc, field, msg string
	}{
		{`{"countries":{"default":"deny","except":["US"]},"countries":{"default":"allow","except":[]}}`, "countries", "given twice"},
		{`{"subaccounts":{"s1":{"max_cps":1,"max_cps":50}}}`, "subaccounts.s1.max_cps", "given twice"},
		{`{"subaccounts":{"s1":{},"s1":{"max_cps":9}}}`, "subaccounts.s1", "given twice"},
		{`{"countries":{"default":"deny","default":"allow"}}`, "countries.default", "given twice"},
		{`{"max_cps":1,"max\u005fcps":2}`, "max_cps", "given twice"}, // the same key, escaped
		{`{"Max_Channels":5}`, "Max_Channels", `did you mean "max_channels"`},
		{`{"countries":{"Default":"deny"}}`, "countries.Default", `did you mean "default"`},
		{`{"max_chanels":5}`, "max_chanels", "unknown field"},
		{`{"countries":{"default":"deny","except":["US",5]}}`, "countries.except[1]", "expected string, got JSON number"},
		{`{"max_cps":"5"}`, "max_cps", "expected int, got JSON string"},
		{`{"velocity":{"rules":[{"nme":"x"}]}}`, "velocity.rules[0].nme", "unknown field"},
		{`{"é":1}`, "é", "unknown field"},
		{"{\"subaccounts\":{\"a\xff\":{},\"a\xfe\":{}}}", "subaccounts", "not valid UTF-8"},
		{`{"max_cps":1} {}`, "", "unexpected data after the JSON object"},
		{`{"max_cps":1`, "", "truncated JSON"},
		{``, "", "empty document"},
		{`{"max_cps":01}`, "", "malformed JSON at byte 12"},
		{`{"max_cps":1e400}`, "max_cps", "expected int"},
		{strings.Repeat(`{"subaccounts":{"a":`, 40) + `{}` + strings.Repeat(`}}`, 40), "", "unknown field"},
	}
	for _, tc := range cases {
		fe := strictErr(t, tc.doc)
		if fe == nil {
			t.Errorf("%s: accepted", tc.doc)
			continue
		}
		if tc.field != "" && fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("%.60s: got field %q msg %q, want field %q msg containing %q", tc.doc, fe.Field, fe.Msg, tc.field, tc.msg)
		}
	}
}

// What DecodeStrict accepts it decodes exactly as encoding/json does.
func TestDecodeStrictAccepts(t *testing.T) {
	for _, doc := range []string{
		`{}`,
		` {"home_country":"US","countries":{"default":"deny","except":["US","CA"]},"max_channels":160,"max_cps":null} `,
		`{"subaccounts":{"sales":{"max_cps":5},"ops":{"allow_prefixes":["+44"]}},"high_risk":"allow"}`,
		`{"velocity":{"rules":[]},"origin":{"home_origin":"US"}}`,
		`{"countries":{"default":"allow","except":[]},"max_destination_rate":0.25}`,
	} {
		var got, want Account
		if err := DecodeStrict([]byte(doc), &got); err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		json.Unmarshal([]byte(doc), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded %+v, encoding/json %+v", doc, got, want)
		}
	}
	// encoding/json writes []byte as base64 but [N]byte as an array.
	var bytesDoc struct {
		S []byte  `json:"s"`
		A [2]byte `json:"a"`
	}
	if err := DecodeStrict([]byte(`{"s":"AQI=","a":[3,4]}`), &bytesDoc); err != nil || bytesDoc.S[1] != 2 || bytesDoc.A[1] != 4 {
		t.Errorf("bytes: %v %+v", err, bytesDoc)
	}
	var op Operator
	if err := DecodeStrict([]byte(`{"unknown_accounts":"reject","disabled_countries":{"KP":{"reason":"sanctions"}},"default":{}}`), &op); err != nil || op.UnknownAccounts != UnknownReject {
		t.Errorf("operator: %v %+v", err, op)
	}
	if err := DecodeStrict([]byte(`{"disabled_countries":{"KP":{},"KP":{}}}`), &op); err == nil || !strings.Contains(err.Error(), "disabled_countries.KP: given twice") {
		t.Errorf("operator duplicate: %v", err)
	}
}

// Non-ASCII input is shown as written: 'é', not its first byte read as
// Latin-1 ('Ã'), which is what quoting the byte did.
func TestNonASCIIInMessages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ValidName("café"), `'é'`},
		{ValidName("日本"), `'日'`},
		{ValidName("a\xffb"), `byte 0xff`},
		{func() error { _, err := NormalizePrefix("+44é"); return err }(), `'é'`},
		{DecodeStrict([]byte(`{"café":1}`), &Account{}), `café`},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) || strings.Contains(tc.err.Error(), "Ã") {
			t.Errorf("got %v, want it to show %s", tc.err, tc.want)
		}
	}
}

// FuzzDecodeStrict: any input either is refused with a FieldError or
// decodes to exactly what encoding/json decodes, and a decoded account
// encodes to a document DecodeStrict accepts again.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"countries":{"default":"deny","except":["US"]}}`, `{"countries":{},"countries":{}}`,
		`{"Max_Channels":1}`, `{"subaccounts":{"a":{"max_cps":1}}}`, `{"max_cps":"x"}`, `[1,2]`, `null`,
		`{"velocity":{"rules":[{"name":"n"}]}}`, `{"a\u0062":1}`, `{"template":"retail-eu","max_cps":1}`, `{"origin":{"trusted_sources":["10.0.0.0/8"]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Account
		err := DecodeStrict(b, &got)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a FieldError: %v", err)
			}
			return
		}
		var want Account
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v, encoding/json %+v", got, want)
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var back Account
		if err := DecodeStrict(again, &back); err != nil {
			t.Fatalf("its own encoding refused: %v (%s)", err, again)
		}
	})
}
