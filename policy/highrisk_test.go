package policy

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

const goodHighRisk = "# version: 2025.06.01-1\n" +
	"# generated: by hand for a test\n" +
	"# free text: ignored\n" +
	"prefix,country,category,source\n" +
	"+4490,GB,premium_rate,libphonenumber v1.8.1 premium_rate GB\n" +
	"# a comment between entries, with an odd \" quote\n" +
	"\n" +
	"00 881,001,satellite,\"ITU-T E.164, GMSS\"\n" +
	"  +1 900  , us , Premium_Rate ,\"  say \"\"hi\"\" \"\n"

func TestParseHighRiskGood(t *testing.T) {
	l, err := ParseHighRiskList(strings.NewReader(goodHighRisk))
	if err != nil {
		t.Fatal(err)
	}
	want := HighRiskList{
		Meta: HighRiskMeta{Version: "2025.06.01-1", Generated: "by hand for a test"},
		Entries: []HighRiskEntry{
			{"+4490", "GB", CategoryPremiumRate, "libphonenumber v1.8.1 premium_rate GB"},
			{"+881", NonGeographic, CategorySatellite, "ITU-T E.164, GMSS"},
			{"+1900", "US", CategoryPremiumRate, `say "hi"`},
		},
	}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("got %+v\nwant %+v", l, want)
	}
	if v := HighRiskVersion(strings.NewReader(goodHighRisk)); v != "2025.06.01-1" {
		t.Errorf("HighRiskVersion = %q", v)
	}
	// CRLF line endings, a byte order mark and no final newline read the same.
	crlf := "\xEF\xBB\xBF" + strings.TrimSuffix(strings.ReplaceAll(goodHighRisk, "\n", "\r\n"), "\r\n")
	l2, err := ParseHighRiskList(strings.NewReader(crlf))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l2, want) {
		t.Fatalf("CRLF+BOM: got %+v", l2)
	}
	// One byte at a time, as a slow network body arrives.
	l3, err := ParseHighRiskList(iotest.OneByteReader(strings.NewReader(goodHighRisk)))
	if err != nil || !reflect.DeepEqual(l3, want) {
		t.Fatalf("one byte reader: %+v %v", l3, err)
	}
	// Header only: an empty list, not nil and not an error.
	e, err := ParseHighRiskCSV(strings.NewReader(HighRiskHeader + "\n"))
	if err != nil || e == nil || len(e) != 0 {
		t.Fatalf("header only: %v %v", e, err)
	}
}

func TestParseHighRiskErrors(t *testing.T) {
	const h = HighRiskHeader + "\n"
	const ok = "+4490,GB,premium_rate,src\n"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "line 1: missing header"},
		{"comments only", "# version: 1\n\n", "line 3: missing header"},
		{"wrong header", "prefix,country,source,category\n", `line 1: header must be "prefix,country,category,source"`},
		{"header case", "Prefix,Country,Category,Source\n", "line 1: header must be"},
		{"no header", ok, "line 1: header must be"},
		{"few fields", h + "+44,GB,irsf\n", "line 2: 3 fields, want 4"},
		{"many fields", h + "+44,GB,irsf,a,b\n", "line 2: 5 fields, want 4"},
		{"bad prefix", h + ok + "+44x,GB,irsf,a\n", `line 3: prefix: prefix "+44x": character 'x' is not a digit`},
		{"empty prefix", h + ",GB,irsf,a\n", `line 2: prefix: prefix "" has no digits`},
		{"zero prefix", h + "+0,GB,irsf,a\n", "line 2: prefix: prefix \"+0\": no country calling code starts with 0"},
		{"long prefix", h + "+1234567890123456,GB,irsf,a\n", "line 2: prefix: prefix \"+1234567890123456\" is longer than 15 digits"},
		{"unknown country", h + ok + ok[:0] + "+44,XX,irsf,a\n", `line 3: country "XX" unknown`},
		{"empty country", h + "+44,,irsf,a\n", "line 2: country: empty"},
		{"unknown category", h + "+44,GB,toll_free,a\n", `line 2: category "toll_free" unknown (want one of international_network`},
		{"empty source", h + "+44,GB,irsf,  \n", "line 2: source: empty"},
		{"control in source", h + "+44,GB,irsf,\"a\tb\"\n", "line 2: source: not printable"},
		{"bad utf8 source", h + "+44,GB,irsf,a\xffb\n", "line 2: source: not printable"},
		{"long source", h + "+44,GB,irsf," + strings.Repeat("a", MaxHighRiskSourceLen+1) + "\n", "line 2: source: longer than 512 bytes"},
		{"duplicate", h + ok + "\n# c\n0044 90,gb,irsf,other\n", "line 5: prefix +4490 already listed on line 2"},
		{"multi-line field", h + "+44,GB,irsf,\"a\nb\"\n", "line 2: unbalanced quotes"},
		{"bare quote", h + "+44,GB,irsf,a\"b\"\n", `line 2: bare " in non-quoted-field`},
		{"long line", h + ok + "+44,GB,irsf," + strings.Repeat("a", MaxHighRiskLineLen) + "\n", "line 3: longer than 1024 bytes"},
		{"long comment", h + "#" + strings.Repeat("a", MaxHighRiskLineLen+100) + "\n", "line 2: longer than 1024 bytes"},
		{"version twice", "# version: 1\n# Version: 2\n" + h, "line 2: version: already given on line 1"},
		{"version spaces", "# version: 1 2\n" + h, `line 1: version: "1 2" contains spaces`},
		{"version empty", "# version:\n" + h, "line 1: version: empty"},
		{"generated control", "# generated: a\x01b\n" + h, "line 1: generated: not printable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseHighRiskCSV(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("no error, got %v", e)
			}
			if e != nil {
				t.Errorf("entries returned with an error: %v", e)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "line ") {
				t.Errorf("error %T %v is not a line FieldError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// The first bad line is the one reported even when a later line is bad in a
// way the line reader notices before the CSV parser reaches the first.
func TestParseHighRiskFirstErrorWins(t *testing.T) {
	in := HighRiskHeader + "\n+44,XX,irsf,a\n+44,GB,irsf," + strings.Repeat("a", 2000) + "\n"
	_, err := ParseHighRiskCSV(strings.NewReader(in))
	if err == nil || !strings.HasPrefix(err.Error(), "line 2: country") {
		t.Fatalf("got %v", err)
	}
}

func TestParseHighRiskReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(HighRiskHeader+"\n+44,GB,irsf,a\n"), iotest.ErrReader(boom))
	if _, err := ParseHighRiskCSV(r); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
}

func TestParseHighRiskLimits(t *testing.T) {
	defer func(e, l int) { maxHighRiskEntries, maxHighRiskLines = e, l }(maxHighRiskEntries, maxHighRiskLines)
	maxHighRiskEntries, maxHighRiskLines = 3, 100
	var b strings.Builder
	b.WriteString(HighRiskHeader + "\n")
	for i := 0; i < 4; i++ {
		b.WriteString("+44" + strconv.Itoa(i) + ",GB,irsf,a\n")
	}
	if _, err := ParseHighRiskCSV(strings.NewReader(b.String())); err == nil || err.Error() != "line 5: more than 3 entries" {
		t.Errorf("entries: %v", err)
	}
	many := make([]HighRiskEntry, 4)
	for i := range many {
		many[i] = HighRiskEntry{"+44" + strconv.Itoa(i), "GB", "irsf", "a"}
	}
	if err := WriteHighRiskCSV(io.Discard, many); err == nil {
		t.Error("WriteHighRiskCSV accepted more than the limit")
	}
	maxHighRiskLines = 5
	if _, err := ParseHighRiskCSV(strings.NewReader("#\n#\n#\n#\n#\n#\n" + HighRiskHeader + "\n")); err == nil || err.Error() != "line 6: more than 5 lines" {
		t.Errorf("lines: %v", err)
	}
}

func TestWriteHighRisk(t *testing.T) {
	l := HighRiskList{
		Meta: HighRiskMeta{Version: "2025.06.01-2", Generated: "by a test"},
		Entries: []HighRiskEntry{
			{"0044 90", "gb", "Premium_Rate", " a, \"quoted\" source "},
			{"+881", "001", "satellite", "# not a comment"},
		},
	}
	var buf bytes.Buffer
	if err := WriteHighRiskList(&buf, l); err != nil {
		t.Fatal(err)
	}
	const want = "# version: 2025.06.01-2\n# generated: by a test\n" + HighRiskHeader + "\n" +
		"+4490,GB,premium_rate,\"a, \"\"quoted\"\" source\"\n" +
		"+881,001,satellite,# not a comment\n"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	back, err := ParseHighRiskList(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Meta != l.Meta || back.Entries[0].Source != `a, "quoted" source` || back.Entries[1].Prefix != "+881" {
		t.Fatalf("read back %+v", back)
	}
	// The caller's slice is not canonicalised in place.
	if l.Entries[0].Prefix != "0044 90" {
		t.Error("WriteHighRiskList modified its input")
	}

	buf.Reset()
	if err := WriteHighRiskCSV(&buf, nil); err != nil || buf.String() != HighRiskHeader+"\n" {
		t.Fatalf("empty: %q %v", buf.String(), err)
	}
	for _, tc := range []struct {
		name string
		l    HighRiskList
		want string
	}{
		{"bad country", HighRiskList{Entries: []HighRiskEntry{{"+44", "GB", "irsf", "a"}, {"+45", "ZZ", "irsf", "a"}}}, `entries[1]: country "ZZ" unknown`},
		{"duplicate", HighRiskList{Entries: []HighRiskEntry{{"+44", "GB", "irsf", "a"}, {"0044", "GB", "irsf", "b"}}}, "entries[1]: prefix +44 already in entries[0]"},
		{"version spaces", HighRiskList{Meta: HighRiskMeta{Version: "a b"}}, "meta.version: version: \"a b\" contains spaces"},
		{"generated newline", HighRiskList{Meta: HighRiskMeta{Generated: "a\nb"}}, "meta.generated: generated: not printable single-line text"},
	} {
		buf.Reset()
		err := WriteHighRiskList(&buf, tc.l)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %q before failing", tc.name, buf.String())
		}
	}
}

func TestReadHighRiskMeta(t *testing.T) {
	// Comments after the header are not provenance.
	m, err := ReadHighRiskMeta(strings.NewReader("# generated: x\n" + HighRiskHeader + "\n# version: 9\n"))
	if err != nil || m != (HighRiskMeta{Generated: "x"}) {
		t.Fatalf("got %+v %v", m, err)
	}
	// It stops at the header: a broken body does not matter.
	if v := HighRiskVersion(io.MultiReader(strings.NewReader("# version: 7\n"+HighRiskHeader+"\n"), iotest.ErrReader(errors.New("unread")))); v != "7" {
		t.Fatalf("version %q", v)
	}
	if v := HighRiskVersion(strings.NewReader("# version: a b\n")); v != "" {
		t.Fatalf("malformed version read as %q", v)
	}
	if v := HighRiskVersion(strings.NewReader("")); v != "" {
		t.Fatalf("empty file version %q", v)
	}
}

func TestHighRiskCategories(t *testing.T) {
	c := HighRiskCategories()
	for i := 1; i < len(c); i++ {
		if c[i-1] >= c[i] {
			t.Fatalf("not sorted: %v", c)
		}
	}
	for _, k := range c {
		if !ValidHighRiskCategory(k) {
			t.Errorf("%s not valid", k)
		}
	}
	c[0] = "x"
	if HighRiskCategories()[0] == "x" {
		t.Error("HighRiskCategories returned its own slice")
	}
	if ValidHighRiskCategory("Premium_Rate") {
		t.Error("categories are case-sensitive once canonical")
	}
}
