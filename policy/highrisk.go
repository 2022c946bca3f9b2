package policy

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// High-risk categories: why a prefix is on the list. The set is closed so
// that a typo in an operator's file is an error instead of a silently new
// category, and so reports and metrics can group by it. docs/highrisk.md
// explains each one and where the shipped list takes its entries from.
const (
	// CategoryPremiumRate is a national premium-rate range: the called
	// party is paid per minute, which is what an IRSF attacker cashes in.
	CategoryPremiumRate = "premium_rate"
	// CategorySharedCost is a national shared-cost range: the caller pays
	// part of the cost and in many countries the called party gets a share,
	// so it can be pumped like premium rate, for less.
	CategorySharedCost = "shared_cost"
	// CategorySatellite is a satellite network (+870 Inmarsat, +881 GMSS):
	// per-minute termination rates of several dollars.
	CategorySatellite = "satellite"
	// CategoryInternationalNetwork is a global network code (+882, +883)
	// whose numbers are handed to carriers and service providers anywhere,
	// so no national regulator vouches for them.
	CategoryInternationalNetwork = "international_network"
	// CategoryInternationalPremium is the international premium-rate
	// service code (+979), premium rate by definition.
	CategoryInternationalPremium = "international_premium"
	// CategoryIRSF is a range that published anti-fraud guidance names as
	// an International Revenue Share Fraud destination.
	CategoryIRSF = "irsf"
)

// Lowered by tests to reach the limits without a 2,000,000-line file.
var (
	maxHighRiskEntries = MaxHighRiskEntries
	maxHighRiskLines   = MaxHighRiskLines
)

var highRiskCategories = []string{
	CategoryInternationalNetwork,
	CategoryInternationalPremium,
	CategoryIRSF,
	CategoryPremiumRate,
	CategorySatellite,
	CategorySharedCost,
}

// HighRiskCategories lists the categories a high-risk entry may carry, sorted,
// for admin UIs and error messages. The slice is a copy.
func HighRiskCategories() []string {
	return append([]string(nil), highRiskCategories...)
}

// ValidHighRiskCategory reports whether c is one of HighRiskCategories.
func ValidHighRiskCategory(c string) bool {
	for _, k := range highRiskCategories {
		if c == k {
			return true
		}
	}
	return false
}

// HighRiskHeader is the first non-comment line of every high-risk CSV file.
// It is required verbatim so that a file with its columns in another order
// (or a different CSV entirely) is refused instead of misread.
const HighRiskHeader = "prefix,country,category,source"

// Limits on a high-risk file. They keep a hostile or broken upload (the
// sidecar accepts one over HTTP) from exhausting memory: each record is one
// physical line, so no single record can be larger than a line.
const (
	// MaxHighRiskEntries bounds the list: twenty times the shipped list
	// and twice the size the matcher is benchmarked with.
	MaxHighRiskEntries = 2_000_000
	// MaxHighRiskLines bounds every line of the file, comments and blank
	// lines included, so a file of nothing but comments ends too.
	MaxHighRiskLines = 2 * MaxHighRiskEntries
	// MaxHighRiskLineLen bounds one line in bytes, line ending excluded.
	MaxHighRiskLineLen = 1024
	// MaxHighRiskSourceLen bounds the source column: room for a document
	// title and its URL, not for a pasted document.
	MaxHighRiskSourceLen = 512
	// MaxHighRiskMetaLen bounds a # version: or # generated: value.
	MaxHighRiskMetaLen = 256
)

// HighRiskMeta is the provenance a high-risk file carries in comment lines
// before its header, so a list that has been exported, edited and uploaded
// again can still be told apart from the one that shipped:
//
//	# version: 2025.06.01-1
//	# generated: by go run ./cmd/genhighrisk from libphonenumber v1.8.1 and matcher/data/irsf_curated.csv
//	prefix,country,category,source
//
// Both lines are optional. Only comments before the header count; a key may
// appear once; key names are case-insensitive. Other comment lines are free
// text and are ignored.
type HighRiskMeta struct {
	// Version identifies the list. The shipped list uses YYYY.MM.DD-n
	// (date of the data, then a counter for regenerations on one day);
	// operators may use any token up to MaxHighRiskMetaLen bytes without
	// spaces.
	Version string
	// Generated says what produced the list, for a human reading it.
	Generated string
}

// HighRiskList keeps a high-risk file's provenance with its entries, so the
// version of an uploaded list survives storage and comes back on export.
type HighRiskList struct {
	Meta    HighRiskMeta
	Entries []HighRiskEntry
}

// ParseHighRiskCSV reads a high-risk prefix list (see ParseHighRiskList for
// the format). It is all-or-nothing: on any error it returns no entries, so a
// bad upload can never half-replace the list in force.
func ParseHighRiskCSV(r io.Reader) ([]HighRiskEntry, error) {
	l, err := ParseHighRiskList(r)
	if err != nil {
		return nil, err
	}
	return l.Entries, nil
}

// ParseHighRiskList reads a high-risk file with its provenance comments.
//
// The format is RFC 4180 CSV with the header HighRiskHeader, one entry per
// line (a quoted field may not span lines), lines starting with '#' as
// comments, blank lines ignored and an optional UTF-8 byte order mark (what
// spreadsheets write). Every field is trimmed; the prefix is canonicalised
// with NormalizePrefix, the country upper-cased and checked with
// LookupCountry, the category lower-cased and checked against
// HighRiskCategories; the source must be non-empty printable text. A prefix
// listed twice is an error even with the same data, because a file that says
// one thing twice has usually been merged badly. A prefix covering another is
// allowed: the matcher uses the longest.
//
// Every format error is a *FieldError whose Field is "line N" and whose
// message starts with the column at fault, e.g. `line 17: country "XX"
// unknown`, so an API can point the operator at the line; an error reading r
// is returned as it is. Nothing is returned with an error.
func ParseHighRiskList(r io.Reader) (HighRiskList, error) {
	f := &lineFeeder{br: bufio.NewReaderSize(r, MaxHighRiskLineLen+16)}
	cr := csv.NewReader(f)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var (
		entries   []HighRiskEntry
		seen      = make(map[string]int)
		gotHeader bool
		interned  = make(map[string]string)
		prefixes  Slab
	)
	intern := func(v string) string {
		if c, ok := interned[v]; ok {
			return c
		}
		c := strings.Clone(v)
		interned[c] = c
		return c
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return HighRiskList{}, fe
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return HighRiskList{}, lineErr(pe.Line, "%v", pe.Err)
			}
			return HighRiskList{}, err
		}
		line, _ := cr.FieldPos(0)
		if !gotHeader {
			if strings.Join(rec, ",") != HighRiskHeader {
				return HighRiskList{}, lineErr(line, "header must be %q, got %q", HighRiskHeader, strings.Join(rec, ","))
			}
			gotHeader = true
			continue
		}
		if len(rec) != 4 {
			return HighRiskList{}, lineErr(line, "%d fields, want 4 (%s)", len(rec), HighRiskHeader)
		}
		e, err := canonicalEntry(HighRiskEntry{Prefix: rec[0], Country: rec[1], Category: rec[2], Source: rec[3]})
		if err != nil {
			return HighRiskList{}, lineErr(line, "%v", err)
		}
		// Country, category and source repeat across thousands of entries,
		// and as substrings of the CSV record they would each keep their
		// whole line alive: intern a copy of each distinct value instead.
		e.Country, e.Category, e.Source = intern(e.Country), intern(e.Category), intern(e.Source)
		// and the prefixes go into a slab's chunks: a million small
		// strings among the start-up's other objects would pin their
		// spans once the list is compiled and dropped
		e.Prefix = prefixes.Copy(e.Prefix)
		if first, dup := seen[e.Prefix]; dup {
			return HighRiskList{}, lineErr(line, "prefix %s already listed on line %d", e.Prefix, first)
		}
		if len(entries) == maxHighRiskEntries {
			return HighRiskList{}, lineErr(line, "more than %d entries", maxHighRiskEntries)
		}
		seen[e.Prefix] = line
		entries = append(entries, e)
	}
	if !gotHeader {
		return HighRiskList{}, lineErr(f.line+1, "missing header %q", HighRiskHeader)
	}
	if entries == nil {
		entries = []HighRiskEntry{}
	}
	return HighRiskList{Meta: f.meta, Entries: entries}, nil
}

// HighRiskVersion returns the "# version:" of a high-risk file, or "" when
// it has none or its leading comments are malformed. It reads only up to the
// header, so checking the version of a large file is cheap.
func HighRiskVersion(r io.Reader) string {
	m, err := ReadHighRiskMeta(r)
	if err != nil {
		return ""
	}
	return m.Version
}

// ReadHighRiskMeta reads the provenance comments of a high-risk file and
// stops at its header, so reporting which list a file holds does not cost a
// parse of two million entries.
func ReadHighRiskMeta(r io.Reader) (HighRiskMeta, error) {
	f := &lineFeeder{br: bufio.NewReaderSize(r, MaxHighRiskLineLen+16)}
	for !f.headerSeen {
		f.next()
		if f.err != nil {
			if f.err == io.EOF {
				break
			}
			return HighRiskMeta{}, f.err
		}
	}
	return f.meta, nil
}

// WriteHighRiskCSV writes entries as a high-risk file that ParseHighRiskCSV
// reads back to the same entries, in the given order. It validates first and
// writes nothing when an entry is invalid or a prefix repeats, so an export
// is never a file the importer would refuse.
func WriteHighRiskCSV(w io.Writer, entries []HighRiskEntry) error {
	return WriteHighRiskList(w, HighRiskList{Entries: entries})
}

// WriteHighRiskList writes a high-risk file with its provenance comments
// (only those set) before the header, with the same guarantees as
// WriteHighRiskCSV.
func WriteHighRiskList(w io.Writer, l HighRiskList) error {
	if err := checkMetaValue("version", l.Meta.Version, true); err != nil {
		return &FieldError{Field: "meta.version", Msg: err.Error()}
	}
	if err := checkMetaValue("generated", l.Meta.Generated, false); err != nil {
		return &FieldError{Field: "meta.generated", Msg: err.Error()}
	}
	if len(l.Entries) > maxHighRiskEntries {
		return &FieldError{Field: "entries", Msg: fmt.Sprintf("more than %d entries", maxHighRiskEntries)}
	}
	out := make([]HighRiskEntry, len(l.Entries))
	seen := make(map[string]int, len(l.Entries))
	for i, e := range l.Entries {
		c, err := canonicalEntry(e)
		if err != nil {
			return &FieldError{Field: fmt.Sprintf("entries[%d]", i), Msg: err.Error()}
		}
		if first, dup := seen[c.Prefix]; dup {
			return &FieldError{Field: fmt.Sprintf("entries[%d]", i), Msg: fmt.Sprintf("prefix %s already in entries[%d]", c.Prefix, first)}
		}
		seen[c.Prefix] = i
		out[i] = c
	}
	bw := bufio.NewWriter(w)
	if l.Meta.Version != "" {
		fmt.Fprintf(bw, "# version: %s\n", l.Meta.Version)
	}
	if l.Meta.Generated != "" {
		fmt.Fprintf(bw, "# generated: %s\n", l.Meta.Generated)
	}
	bw.WriteString(HighRiskHeader + "\n")
	cw := csv.NewWriter(bw)
	for _, e := range out {
		if err := cw.Write([]string{e.Prefix, e.Country, e.Category, e.Source}); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// canonicalEntry checks one entry and returns it in canonical form. Its error
// message starts with the column at fault.
func canonicalEntry(e HighRiskEntry) (HighRiskEntry, error) {
	p, err := NormalizePrefix(e.Prefix)
	if err != nil {
		return e, fmt.Errorf("prefix: %v", err)
	}
	cc := strings.ToUpper(strings.TrimSpace(e.Country))
	if cc == "" {
		return e, errors.New("country: empty")
	}
	if _, ok := LookupCountry(cc); !ok {
		return e, fmt.Errorf("country %q unknown", e.Country)
	}
	cat := strings.ToLower(strings.TrimSpace(e.Category))
	if !ValidHighRiskCategory(cat) {
		return e, fmt.Errorf("category %q unknown (want one of %s)", e.Category, strings.Join(highRiskCategories, ", "))
	}
	src := strings.TrimSpace(e.Source)
	switch {
	case src == "":
		return e, errors.New("source: empty (say where the entry comes from)")
	case len(src) > MaxHighRiskSourceLen:
		return e, fmt.Errorf("source: longer than %d bytes", MaxHighRiskSourceLen)
	case !printable(src):
		return e, errors.New("source: not printable UTF-8 text")
	}
	return HighRiskEntry{Prefix: p, Country: cc, Category: cat, Source: src}, nil
}

// printable reports whether s is valid UTF-8 without control characters, so
// it can go into a log line or a SIP header without escaping surprises.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError || r == '\uFEFF' {
			return false
		}
	}
	return true
}

func checkMetaValue(key, v string, token bool) error {
	switch {
	case len(v) > MaxHighRiskMetaLen:
		return fmt.Errorf("%s: longer than %d bytes", key, MaxHighRiskMetaLen)
	case v != strings.TrimSpace(v), !printable(v):
		return fmt.Errorf("%s: not printable single-line text", key)
	case token && strings.ContainsAny(v, " \t"):
		return fmt.Errorf("%s: %q contains spaces", key, v)
	}
	return nil
}

func lineErr(line int, format string, args ...any) error {
	return &FieldError{Field: fmt.Sprintf("line %d", line), Msg: fmt.Sprintf(format, args...)}
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// lineFeeder hands the CSV reader one physical line at a time after checking
// what encoding/csv cannot: line length, line count, that no quoted field
// runs over a line end, and the provenance comments before the header. A bad
// line is withheld and its error returned in its place, so the CSV reader has
// parsed every earlier line first and the reported error is the first one in
// the file.
type lineFeeder struct {
	br         *bufio.Reader
	pending    []byte
	err        error
	line       int
	headerSeen bool
	meta       HighRiskMeta
	metaLine   [2]int // where version and generated were found
}

func (f *lineFeeder) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		f.next()
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// next reads one line into pending, or sets err.
func (f *lineFeeder) next() {
	raw, err := f.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		f.err = lineErr(f.line+1, "longer than %d bytes", MaxHighRiskLineLen)
		return
	}
	if len(raw) == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		f.err = err
		return
	}
	f.line++
	if f.line > maxHighRiskLines {
		f.err = lineErr(f.line, "more than %d lines", maxHighRiskLines)
		return
	}
	if f.line == 1 {
		raw = bytes.TrimPrefix(raw, utf8BOM)
	}
	content := bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
	if len(content) > MaxHighRiskLineLen {
		f.err = lineErr(f.line, "longer than %d bytes", MaxHighRiskLineLen)
		return
	}
	switch {
	case len(content) > 0 && content[0] == '#':
		if !f.headerSeen {
			if e := f.metaComment(content[1:]); e != nil {
				f.err = e
				return
			}
		}
	case len(content) == 0:
	default:
		f.headerSeen = true
		if bytes.Count(content, []byte{'"'})%2 != 0 {
			f.err = lineErr(f.line, "unbalanced quotes (a quoted field must end on its own line)")
			return
		}
	}
	f.pending = raw
	if err != nil {
		f.err = err // io.EOF after a last line without a newline
	}
}

// metaComment records a "# key: value" comment before the header.
func (f *lineFeeder) metaComment(c []byte) error {
	key, val, ok := strings.Cut(string(c), ":")
	if !ok {
		return nil
	}
	key = strings.ToLower(strings.TrimSpace(key))
	val = strings.TrimSpace(val)
	var dst *string
	var at *int
	switch key {
	case "version":
		dst, at = &f.meta.Version, &f.metaLine[0]
	case "generated":
		dst, at = &f.meta.Generated, &f.metaLine[1]
	default:
		return nil
	}
	if *at != 0 {
		return lineErr(f.line, "%s: already given on line %d", key, *at)
	}
	if val == "" {
		return lineErr(f.line, "%s: empty", key)
	}
	if err := checkMetaValue(key, val, key == "version"); err != nil {
		return lineErr(f.line, "%v", err)
	}
	*dst, *at = val, f.line
	return nil
}
