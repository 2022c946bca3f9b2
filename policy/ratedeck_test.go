package policy

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

const goodDeck = "\xEF\xBB\xBF# carrier X, 2026-11\r\n" +
	"prefix,rate_per_minute,currency\r\n" +
	"+44,0.012,gbp\r\n" +
	"\r\n" +
	"\"0044 7\",\"0.09\",\"GBP\"\r\n" +
	"+88216, 1.2 ,GBP\r\n" +
	"+1,0,GBP"

func TestParseRateDeckGood(t *testing.T) {
	d, err := ParseRateDeck(strings.NewReader(goodDeck))
	if err != nil {
		t.Fatal(err)
	}
	want := RateDeck{Currency: "GBP", Entries: []RateEntry{{"+44", 12000}, {"+447", 90000}, {"+88216", 1_200_000}, {"+1", 0}}}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v\nwant %+v", d, want)
	}
	// no header is fine too, and an empty deck is empty, not nil
	if d, err := ParseRateDeck(strings.NewReader("+44,1,EUR\n")); err != nil || d.Currency != "EUR" || len(d.Entries) != 1 {
		t.Errorf("headerless: %+v %v", d, err)
	}
	if d, err := ParseRateDeck(strings.NewReader(RateDeckHeader + "\n")); err != nil || d.Entries == nil || len(d.Entries) != 0 {
		t.Errorf("empty: %+v %v", d, err)
	}
}

func TestParseRateDeckErrors(t *testing.T) {
	cases := map[string]struct{ in, field, msg string }{
		"fields":        {"+44,1\n", "line 1", "2 fields"},
		"prefix":        {"prefix,rate_per_minute,currency\n+44,1,GBP\nabc,1,GBP\n", "line 3", "prefix:"},
		"rate":          {"+44,-1,GBP\n", "line 1", "rate_per_minute:"},
		"rate exponent": {"+44,1e3,GBP\n", "line 1", "rate_per_minute:"},
		"rate precise":  {"+44,0.0000001,GBP\n", "line 1", "decimal places"},
		"rate huge":     {"+44,1000001,GBP\n", "line 1", "above"},
		"currency":      {"+44,1,POUND\n", "line 1", "ISO 4217"},
		"mixed":         {"+44,1,GBP\n# x\n+33,1,EUR\n", "line 3", "differs from GBP on line 1"},
		"duplicate":     {"+44,1,GBP\n+33,1,GBP\n0044,2,GBP\n", "line 3", "already listed on line 1"},
		"quote":         {"+44,\"1,GBP\n", "line 1", "stray quote"},
		"header late":   {"+44,1,GBP\nprefix,rate_per_minute,currency\n", "line 2", "prefix:"},
		"long line":     {"+44,1,GBP\n" + strings.Repeat("1", MaxRateDeckLineLen+1) + "\n", "line 2", "longer than"},
	}
	for name, c := range cases {
		d, err := ParseRateDeck(strings.NewReader(c.in))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("%s: %v, want %s: …%s…", name, err, c.field, c.msg)
		}
		if d.Entries != nil {
			t.Errorf("%s: entries returned with an error", name)
		}
	}
	if _, err := ParseRateDeck(iotest.ErrReader(errors.New("disk on fire"))); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("read error: %v", err)
	}
}

func TestParseRateDeckLimit(t *testing.T) {
	defer func(n int) { maxRateDeckEntries = n }(maxRateDeckEntries)
	maxRateDeckEntries = 2
	if _, err := ParseRateDeck(strings.NewReader("+1,1,USD\n+2,1,USD\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRateDeck(strings.NewReader("+1,1,USD\n+2,1,USD\n+3,1,USD\n")); err == nil || !strings.Contains(err.Error(), "line 3: more than 2") {
		t.Errorf("limit: %v", err)
	}
}

func TestWriteRateDeck(t *testing.T) {
	d, err := ParseRateDeck(strings.NewReader(goodDeck))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteRateDeck(&b, d); err != nil {
		t.Fatal(err)
	}
	want := "prefix,rate_per_minute,currency\n+44,0.012,GBP\n+447,0.09,GBP\n+88216,1.2,GBP\n+1,0,GBP\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	for name, bad := range map[string]RateDeck{
		"currency":  {Currency: "pounds", Entries: []RateEntry{{"+44", 1}}},
		"prefix":    {Currency: "GBP", Entries: []RateEntry{{"0044", 1}}},
		"duplicate": {Currency: "GBP", Entries: []RateEntry{{"+44", 1}, {"+44", 2}}},
		"negative":  {Currency: "GBP", Entries: []RateEntry{{"+44", -1}}},
	} {
		var b bytes.Buffer
		if err := WriteRateDeck(&b, bad); err == nil || b.Len() != 0 {
			t.Errorf("%s: %v, wrote %q", name, err, b.String())
		}
	}
}

// FuzzParseRateDeck checks that no input makes the parser panic, that an
// error never comes with a deck, and that whatever it accepts survives an
// export and re-import unchanged (GET then PUT /v1/rate-deck).
func FuzzParseRateDeck(f *testing.F) {
	f.Add(goodDeck)
	f.Add(RateDeckHeader + "\n")
	f.Add("+44,1,GBP\n+33,1,EUR\n")
	f.Add("\"+44\",\".5\",\"usd\"\n")
	f.Add("+44,1,GBP\n0044,1,GBP\n")
	f.Add(strings.Repeat("#", 300))
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseRateDeck(strings.NewReader(in))
		if err != nil {
			if _, ok := err.(*FieldError); !ok || d.Entries != nil {
				t.Fatalf("error %v with entries %v", err, d.Entries)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteRateDeck(&buf, d); err != nil {
			t.Fatalf("parsed deck does not write: %v", err)
		}
		back, err := ParseRateDeck(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("written deck does not parse: %v\n%q", err, buf.String())
		}
		if len(d.Entries) == 0 {
			d.Currency = "" // an empty deck has no currency to write
		}
		if !reflect.DeepEqual(back, d) {
			t.Fatalf("round trip changed the deck:\n%+v\n%+v", d, back)
		}
	})
}
