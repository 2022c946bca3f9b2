package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// RateDeckHeader is the optional first line of a rate deck.
const RateDeckHeader = "prefix,rate_per_minute,currency"

// Limits on a rate deck file, for the same reason as the high-risk file's:
// it is uploaded over HTTP.
const (
	MaxRateDeckEntries = 2_000_000
	MaxRateDeckLineLen = 256
)

// Lowered by tests to reach the limit without a 2,000,000-line file.
var maxRateDeckEntries = MaxRateDeckEntries

// RateEntry is one line of a rate deck: what a minute to destinations under
// Prefix costs, in millionths of the deck's currency.
type RateEntry struct {
	Prefix string
	Micro  int64
}

// RateDeck is a price list by destination prefix. The longest matching
// prefix prices a number. All entries share one currency.
type RateDeck struct {
	Currency string
	Entries  []RateEntry
}

// ParseRateDeck reads a rate deck: CSV lines `prefix,rate_per_minute,currency`
// with an optional header line of exactly those names, '#' comment lines,
// blank lines, an optional UTF-8 byte order mark, and fields optionally in
// double quotes. The prefix is canonicalised with NormalizePrefix; the rate is
// a decimal number of currency units per minute (at most 6 decimals, no
// exponent); the currency is an ISO 4217 code, the same on every line. A
// prefix listed twice is an error.
//
// It is all-or-nothing: every error is a *FieldError whose Field is "line N"
// (the first bad line), and no deck is returned with it, so a bad upload
// never half-replaces the deck in force.
func ParseRateDeck(r io.Reader) (RateDeck, error) {
	br := bufio.NewReaderSize(r, MaxRateDeckLineLen+16)
	var (
		deck      RateDeck
		seen      = map[string]int{}
		currLine  int
		line      int
		sawRecord bool
	)
	for {
		raw, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return RateDeck{}, lineErr(line+1, "longer than %d bytes", MaxRateDeckLineLen)
		}
		if len(raw) == 0 && err != nil {
			if err == io.EOF {
				break
			}
			return RateDeck{}, err
		}
		line++
		if line == 1 {
			raw = bytes.TrimPrefix(raw, utf8BOM)
		}
		content := bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
		if len(content) > MaxRateDeckLineLen {
			return RateDeck{}, lineErr(line, "longer than %d bytes", MaxRateDeckLineLen)
		}
		text := strings.TrimSpace(string(content))
		switch {
		case text == "" || text[0] == '#':
		case !sawRecord && strings.EqualFold(strings.ReplaceAll(text, " ", ""), RateDeckHeader):
			sawRecord = true
		default:
			sawRecord = true
			e, cur, ferr := parseRateLine(text)
			if ferr != nil {
				return RateDeck{}, lineErr(line, "%v", ferr)
			}
			if deck.Currency == "" {
				deck.Currency, currLine = cur, line
			} else if cur != deck.Currency {
				return RateDeck{}, lineErr(line, "currency %s differs from %s on line %d (one deck, one currency)", cur, deck.Currency, currLine)
			}
			if first, dup := seen[e.Prefix]; dup {
				return RateDeck{}, lineErr(line, "prefix %s already listed on line %d", e.Prefix, first)
			}
			if len(deck.Entries) == maxRateDeckEntries {
				return RateDeck{}, lineErr(line, "more than %d entries", maxRateDeckEntries)
			}
			seen[e.Prefix] = line
			deck.Entries = append(deck.Entries, e)
		}
		if err != nil {
			if err == io.EOF {
				break
			}
			return RateDeck{}, err
		}
	}
	if deck.Entries == nil {
		deck.Entries = []RateEntry{}
	}
	return deck, nil
}

// parseRateLine reads one record; its error names the column at fault.
func parseRateLine(text string) (RateEntry, string, error) {
	f := strings.Split(text, ",")
	if len(f) != 3 {
		return RateEntry{}, "", fmt.Errorf("%d fields, want 3 (%s)", len(f), RateDeckHeader)
	}
	for i := range f {
		v := strings.TrimSpace(f[i])
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = strings.TrimSpace(v[1 : len(v)-1])
		}
		if strings.ContainsRune(v, '"') {
			return RateEntry{}, "", fmt.Errorf("%s: stray quote", strings.Split(RateDeckHeader, ",")[i])
		}
		f[i] = v
	}
	p, err := NormalizePrefix(f[0])
	if err != nil {
		return RateEntry{}, "", fmt.Errorf("prefix: %v", err)
	}
	m, err := ParseMicro(f[1], MaxRate)
	if err != nil {
		return RateEntry{}, "", fmt.Errorf("rate_per_minute: %v", err)
	}
	cur := strings.ToUpper(f[2])
	if !validCurrency(cur) {
		return RateEntry{}, "", fmt.Errorf("currency %q is not an ISO 4217 code (three letters)", f[2])
	}
	return RateEntry{Prefix: p, Micro: m}, cur, nil
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// WriteRateDeck writes a deck that ParseRateDeck reads back to the same
// deck: the header, then one line per entry in the given order. It checks
// the deck first and writes nothing when it would not parse.
func WriteRateDeck(w io.Writer, d RateDeck) error {
	if len(d.Entries) > 0 && !validCurrency(d.Currency) {
		return &FieldError{Field: "currency", Msg: fmt.Sprintf("%q is not an ISO 4217 code", d.Currency)}
	}
	seen := make(map[string]int, len(d.Entries))
	for i, e := range d.Entries {
		p, err := NormalizePrefix(e.Prefix)
		if err != nil || p != e.Prefix {
			return &FieldError{Field: fmt.Sprintf("entries[%d]", i), Msg: fmt.Sprintf("prefix %q is not canonical", e.Prefix)}
		}
		if e.Micro < 0 || e.Micro > MaxRate*1e6 {
			return &FieldError{Field: fmt.Sprintf("entries[%d]", i), Msg: "rate out of range"}
		}
		if first, dup := seen[p]; dup {
			return &FieldError{Field: fmt.Sprintf("entries[%d]", i), Msg: fmt.Sprintf("prefix %s already in entries[%d]", p, first)}
		}
		seen[p] = i
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(RateDeckHeader + "\n")
	var buf []byte
	for _, e := range d.Entries {
		buf = append(buf[:0], e.Prefix...)
		buf = append(buf, ',')
		buf = AppendMicro(buf, e.Micro)
		buf = append(buf, ',')
		buf = append(buf, d.Currency...)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ErrNoRateDeck is returned where a rate deck is needed and none is loaded.
var ErrNoRateDeck = errors.New("no rate deck loaded")
