package main

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func testWorkloadConfig() workloadConfig {
	return workloadConfig{
		mix: DefaultMix, barred: DefaultBarred, accounts: 500, accountPrefix: "acct-", pool: 10_000, seed: 42,
	}
}

func TestWorkloadSharesExact(t *testing.T) {
	wl, err := buildWorkload(testWorkloadConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := map[class]int{classDomestic: 4000, classIntl: 3000, classBarred: 1000, classHighRisk: 1000, classInvalid: 500, classRandom: 500}
	// The request stream cycles through the pool: over whole cycles the
	// shares are exact, over any window of 1000 they are close.
	got := map[class]int{}
	for i := range 3 * len(wl.calls) {
		got[wl.calls[i%len(wl.calls)].class]++
	}
	for c, n := range want {
		if got[c] != 3*n {
			t.Errorf("%s: %d of %d requests, want %d", c, got[c], 3*len(wl.calls), 3*n)
		}
		if wl.shares[c.String()] != float64(n)/100 {
			t.Errorf("%s: stated share %g%%, want %g%%", c, wl.shares[c.String()], float64(n)/100)
		}
	}
	window := map[class]int{}
	for _, c := range wl.calls[:1000] {
		window[c.class]++
	}
	for c, n := range want {
		exp := float64(n) / 10
		if math.Abs(float64(window[c])-exp) > 5*math.Sqrt(exp)+2 {
			t.Errorf("%s: %d in the first 1000, want about %g (pool not shuffled?)", c, window[c], exp)
		}
	}
}

func TestApportionOddWeights(t *testing.T) {
	shares, err := parseMix("domestic=1, intl=1,barred=1")
	if err != nil {
		t.Fatal(err)
	}
	c := apportion(100, shares)
	if c[0]+c[1]+c[2] != 100 || c[0] < 33 || c[1] < 33 || c[2] < 33 {
		t.Fatalf("apportion 100 by 1:1:1 = %v", c)
	}
	shares, _ = parseMix("domestic=0,intl=3")
	if c := apportion(7, shares); c[0] != 0 || c[1] != 7 {
		t.Fatalf("zero weight got slots: %v", c)
	}
}

func TestParseMixErrors(t *testing.T) {
	for _, bad := range []string{"", "domestic", "domestic=x", "domestic=-1", "nope=3", "domestic=1,domestic=2", "domestic=0", "file=10"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "0", "1234", "5a", ","} {
		if _, err := parseBarred(bad); err == nil {
			t.Errorf("parseBarred(%q) accepted", bad)
		}
	}
}

func TestGeneratedNumbersLookReal(t *testing.T) {
	cfg := testWorkloadConfig()
	cfg.mix = "domestic=1,intl=1,barred=1,highrisk=1,invalid=1,random=1,emergency=1"
	cfg.barred = "53,252,850,999"
	cfg.subaccounts = 3
	wl, err := buildWorkload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[class]*regexp.Regexp{
		classDomestic:  regexp.MustCompile(`^\+1(212|312|415|646|718|213|617|202)[2-9]\d{2}\d{4}$`),
		classIntl:      regexp.MustCompile(`^\+(4420[378]\d{7}|4930[1-9]\d{7}|331[4-9]\d{7}|612[89]\d{7}|813[1-9]\d{7})$`),
		classBarred:    regexp.MustCompile(`^\+(535\d{7}|25261\d{7}|8502381\d{4}|999[1-9]\d{7})$`),
		classHighRisk:  regexp.MustCompile(`^\+(8816\d{8}|88216\d{8}|4490[4-9]\d{7})$`),
		classRandom:    regexp.MustCompile(`^\+[1-9]\d{6,14}$`),
		classEmergency: regexp.MustCompile(`^(911|112|999|\+1911)$`),
	}
	valid := regexp.MustCompile(`^\+[1-9]\d{6,14}$`)
	acct := regexp.MustCompile(`^acct-\d{6}$`)
	seen := map[string]bool{}
	for _, c := range wl.calls {
		if re := shapes[c.class]; re != nil && !re.MatchString(c.to) {
			t.Errorf("%s number %q has the wrong shape", c.class, c.to)
		}
		if c.class == classDomestic && (c.to[6:8] == "11") {
			t.Errorf("domestic number %q has an N11 exchange", c.to)
		}
		if c.class == classInvalid && valid.MatchString(c.to) {
			t.Errorf("invalid number %q looks like valid E.164", c.to)
		}
		if c.class == classBarred {
			seen[c.to[:4]] = true
		}
		if !acct.MatchString(c.account) || c.account > "acct-000500" || c.account < "acct-000001" {
			t.Errorf("account %q outside acct-000001…acct-000500", c.account)
		}
		if !strings.HasPrefix(c.subaccount, "sub-") || c.from == "" || c.srcIP == "" {
			t.Errorf("call %+v lacks subaccount/from/src_ip", c)
		}
	}
	for _, p := range []string{"+535", "+252", "+850", "+999"} {
		if !seen[p] {
			t.Errorf("no barred number with prefix %s", p)
		}
	}
}

func TestNumbersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "numbers.txt")
	data := "# comment\n+12125550123\n\n+442079460000,acct-000042\n+4930123456 acct-7\n  +33142685300\tcustomer-x  \n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testWorkloadConfig()
	cfg.numbersFile = path
	wl, err := buildWorkload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"+12125550123", ""}, {"+442079460000", "acct-000042"}, {"+4930123456", "acct-7"}, {"+33142685300", "customer-x"}}
	if len(wl.calls) != len(want) {
		t.Fatalf("%d calls, want %d", len(wl.calls), len(want))
	}
	for i, w := range want {
		c := wl.calls[i]
		if c.to != w[0] || (w[1] != "" && c.account != w[1]) || c.class != classFile {
			t.Errorf("line %d: %+v, want to=%s account=%s", i, c, w[0], w[1])
		}
	}
	if !strings.HasPrefix(wl.calls[0].account, "acct-") {
		t.Errorf("number without account got %q, want one of the account set", wl.calls[0].account)
	}
	if err := os.WriteFile(path, []byte("a,b,c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := buildWorkload(cfg); err == nil {
		t.Error("three columns accepted")
	}
	if err := os.WriteFile(path, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := buildWorkload(cfg); err == nil {
		t.Error("empty numbers file accepted")
	}
}
