package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestMergePatchRFC7396 runs the examples of RFC 7396 appendix A.
func TestMergePatchRFC7396(t *testing.T) {
	for _, tc := range []struct{ doc, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{``, `{"a":1}`, `{"a":1}`},
		{`{"n":12345678901234567890}`, `{"m":1}`, `{"m":1,"n":12345678901234567890}`},
	} {
		got, err := MergePatch([]byte(tc.doc), []byte(tc.patch))
		if err != nil || string(got) != tc.want {
			t.Errorf("MergePatch(%s, %s) = %s, %v; want %s", tc.doc, tc.patch, got, err, tc.want)
		}
	}
}

func TestMergePatchRefusals(t *testing.T) {
	for _, tc := range []struct{ patch, field string }{
		{``, "body"},
		{`["a"]`, "body"},
		{`"x"`, "body"},
		{`null`, "body"},
		{`{"a":1,"a":2}`, "a"},
		{`{"a":{"b":1,"b":2}}`, "a.b"},
		{`{"a":1} {}`, "body"},
		{`{"a":[1,}`, "a[1]"},
		{`{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, "a" + strings.Repeat("[0]", 64)},
	} {
		_, err := MergePatch([]byte(`{}`), []byte(tc.patch))
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("MergePatch(%q): %v, want a FieldError on %q", tc.patch, err, tc.field)
		}
	}
}

// FuzzMergePatch: any object patch that applies gives JSON, and applying
// it again changes nothing (a merge patch is idempotent).
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"b":null,"c":[1]}}`))
	f.Add([]byte(`{"countries":{"default":"deny"}}`), []byte(`{"countries":{"except":["DE"]}}`))
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		if !json.Valid(doc) {
			return
		}
		once, err := MergePatch(doc, patch)
		if err != nil {
			return
		}
		if !json.Valid(once) {
			t.Fatalf("invalid JSON %s", once)
		}
		twice, err := MergePatch(once, patch)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent: %s then %s (%v)", once, twice, err)
		}
	})
}
