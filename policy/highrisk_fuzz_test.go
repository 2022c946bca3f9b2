package policy

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseHighRiskCSV checks that no input makes the parser panic and that
// whatever it accepts survives an export and re-import unchanged, which is
// what GET then PUT /v1/high-risk does.
func FuzzParseHighRiskCSV(f *testing.F) {
	f.Add(goodHighRisk)
	f.Add(HighRiskHeader + "\n")
	f.Add("\xEF\xBB\xBF# version: 1\r\n" + HighRiskHeader + "\r\n+44 90,gb,IRSF,\" a \"\"b\"\" \"\r\n")
	f.Add(HighRiskHeader + "\n+44,GB,irsf,\"a\nb\"\n")
	f.Add(HighRiskHeader + "\n+44,GB,irsf,a\"b\n")
	f.Add(HighRiskHeader + "\n+44,GB,irsf,\\.\n")
	f.Add("#version:x\n#generated: \u2028\n" + HighRiskHeader + "\n001 2,001,satellite,\u00e9\n")
	f.Add(strings.Repeat("#", 2000))
	f.Fuzz(func(t *testing.T, in string) {
		l, err := ParseHighRiskList(strings.NewReader(in))
		if err != nil {
			if _, ok := err.(*FieldError); !ok || l.Entries != nil {
				t.Fatalf("error %v with entries %v", err, l.Entries)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteHighRiskList(&buf, l); err != nil {
			t.Fatalf("parsed list does not write: %v", err)
		}
		back, err := ParseHighRiskList(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("written list does not parse: %v\n%q", err, buf.String())
		}
		if !reflect.DeepEqual(back, l) {
			t.Fatalf("round trip changed the list:\n%+v\n%+v", l, back)
		}
		var buf2 bytes.Buffer
		if err := WriteHighRiskList(&buf2, back); err != nil || !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatalf("second write differs: %v", err)
		}
	})
}
