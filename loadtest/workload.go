package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
)

// class is the workload category a request was drawn from; the summary
// breaks verdicts down by it.
type class uint8

const (
	classDomestic class = iota
	classIntl
	classBarred
	classHighRisk
	classInvalid
	classRandom
	classEmergency
	classFile
	numClasses
)

var classNames = [numClasses]string{
	"domestic", "intl", "barred", "highrisk", "invalid", "random", "emergency", "file",
}

func (c class) String() string { return classNames[c] }

// DefaultMix is the generated workload used when neither -numbers nor -mix
// is given.
const DefaultMix = "domestic=40,intl=30,barred=10,highrisk=10,invalid=5,random=5"

// DefaultBarred is the default set of barred country calling codes used by
// the "barred" share of the mix: Cuba and Somalia.
const DefaultBarred = "53,252"

// call is one prepared query: everything but the per-request Call-ID.
type call struct {
	to         string
	account    string
	subaccount string
	from       string
	srcIP      string
	class      class
}

// workload is the fixed, pre-generated sequence of calls the load cycles
// through: request i uses calls[i % len(calls)].
type workload struct {
	calls []call
	// shares records the configured share of every class (percent of the
	// pool, exact), for the summary.
	shares map[string]float64
	source string
}

// workloadConfig describes how to build the workload.
type workloadConfig struct {
	numbersFile   string
	mix           string
	barred        string
	accounts      int
	accountPrefix string
	subaccounts   int
	pool          int
	seed          uint64
}

// mixShare is one parsed "class=weight" entry.
type mixShare struct {
	class  class
	weight float64
}

// parseMix parses "domestic=40,intl=30,…". Weights are relative (they need
// not add up to 100) and must be non-negative with a positive sum.
func parseMix(s string) ([]mixShare, error) {
	var out []mixShare
	seen := map[class]bool{}
	var sum float64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix entry %q: want class=weight", part)
		}
		name = strings.TrimSpace(name)
		c := class(255)
		for i, n := range classNames[:classFile] {
			if n == name {
				c = class(i)
			}
		}
		if c == 255 {
			return nil, fmt.Errorf("mix entry %q: unknown class %q (known: %s)", part, name,
				strings.Join(classNames[:classFile], ", "))
		}
		if seen[c] {
			return nil, fmt.Errorf("mix: class %q given twice", name)
		}
		seen[c] = true
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || w < 0 || w != w {
			return nil, fmt.Errorf("mix entry %q: weight must be a non-negative number", part)
		}
		sum += w
		out = append(out, mixShare{c, w})
	}
	if sum <= 0 {
		return nil, fmt.Errorf("mix %q: weights add up to zero", s)
	}
	return out, nil
}

// apportion splits n slots by weights with the largest-remainder method, so
// the counts are exact and add up to n.
func apportion(n int, shares []mixShare) []int {
	var sum float64
	for _, s := range shares {
		sum += s.weight
	}
	counts := make([]int, len(shares))
	rem := make([]float64, len(shares))
	given := 0
	for i, s := range shares {
		exact := float64(n) * s.weight / sum
		counts[i] = int(exact)
		rem[i] = exact - float64(counts[i])
		given += counts[i]
	}
	order := make([]int, len(shares))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rem[a] > rem[b]:
			return -1
		case rem[a] < rem[b]:
			return 1
		}
		return 0
	})
	for k := 0; given < n; k++ {
		counts[order[k%len(order)]]++
		given++
	}
	return counts
}

// parseBarred parses a comma-separated list of country calling codes.
func parseBarred(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimPrefix(strings.TrimSpace(p), "+")
		if p == "" {
			continue
		}
		if len(p) > 3 || p[0] == '0' || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("barred country code %q: want 1-3 digits, not starting with 0", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("barred country list %q is empty", s)
	}
	return out, nil
}

// accountName returns the name of account n (1-based): prefix + 6 digits.
func accountName(prefix string, n int) string {
	return fmt.Sprintf("%s%06d", prefix, n)
}

// buildWorkload generates or loads the call pool.
func buildWorkload(cfg workloadConfig) (*workload, error) {
	if cfg.accounts < 1 {
		return nil, fmt.Errorf("-accounts must be at least 1")
	}
	rng := rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15))
	g := &numberGen{rng: rng}
	acct := &accountGen{rng: rng, prefix: cfg.accountPrefix, n: cfg.accounts, subs: cfg.subaccounts}

	if cfg.numbersFile != "" {
		f, err := os.Open(cfg.numbersFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		calls, err := readNumbers(f, acct)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.numbersFile, err)
		}
		return &workload{calls: calls, shares: map[string]float64{"file": 100}, source: cfg.numbersFile}, nil
	}

	shares, err := parseMix(cfg.mix)
	if err != nil {
		return nil, err
	}
	barred, err := parseBarred(cfg.barred)
	if err != nil {
		return nil, err
	}
	g.barred = barred
	if cfg.pool < 1 {
		return nil, fmt.Errorf("-pool must be at least 1")
	}
	counts := apportion(cfg.pool, shares)
	calls := make([]call, 0, cfg.pool)
	w := &workload{shares: map[string]float64{}, source: "mix " + cfg.mix}
	for i, s := range shares {
		w.shares[s.class.String()] = 100 * float64(counts[i]) / float64(cfg.pool)
		for range counts[i] {
			c := acct.next()
			c.to = g.number(s.class)
			c.class = s.class
			calls = append(calls, c)
		}
	}
	rng.Shuffle(len(calls), func(i, j int) { calls[i], calls[j] = calls[j], calls[i] })
	w.calls = calls
	return w, nil
}

// readNumbers parses a numbers file: one number per line, optionally
// followed by an account, separated by a comma or whitespace. Blank lines
// and lines starting with # are skipped. Lines without an account get one
// drawn from the account set.
func readNumbers(r io.Reader, acct *accountGen) ([]call, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var calls []call
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		fields := strings.FieldsFunc(s, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == ';'
		})
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 2 {
			return nil, fmt.Errorf("line %d: want \"number[,account]\", got %d fields", line, len(fields))
		}
		c := acct.next()
		if len(fields) == 2 {
			c.account = fields[1]
		}
		c.to = fields[0]
		c.class = classFile
		calls = append(calls, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(calls) == 0 {
		return nil, fmt.Errorf("no numbers in file")
	}
	return calls, nil
}

// accountGen draws accounts uniformly from acct-000001…acct-N and derives a
// stable caller number and source IP for each.
type accountGen struct {
	rng    *rand.Rand
	prefix string
	n      int
	subs   int
}

func (a *accountGen) next() call {
	n := 1 + a.rng.IntN(a.n)
	c := call{
		account: accountName(a.prefix, n),
		// Each account calls from its own DID in 646 and its own PBX address.
		from:  fmt.Sprintf("+1646%03d%04d", 200+(n/10000)%800, n%10000),
		srcIP: fmt.Sprintf("10.%d.%d.%d", (n>>16)&255, (n>>8)&255, n&255),
	}
	if a.subs > 0 {
		c.subaccount = fmt.Sprintf("sub-%d", 1+a.rng.IntN(a.subs))
	}
	return c
}

// numberGen produces real-looking dialled numbers for each class.
type numberGen struct {
	rng    *rand.Rand
	barred []string
}

// digits returns n random decimal digits.
func (g *numberGen) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + g.rng.IntN(10))
	}
	return string(b)
}

func (g *numberGen) pick(s ...string) string { return s[g.rng.IntN(len(s))] }

// usNumber returns a NANP number +1 NPA NXX XXXX in one of the given area
// codes, with a valid exchange (2-9 first digit, not N11).
func (g *numberGen) usNumber(npas ...string) string {
	var nxx string
	for {
		nxx = strconv.Itoa(2+g.rng.IntN(8)) + g.digits(2)
		if nxx[1:] != "11" {
			break
		}
	}
	return "+1" + g.pick(npas...) + nxx + g.digits(4)
}

// barredNumbers holds realistic national formats for commonly barred
// destinations; other codes get 8 random national digits.
var barredNumbers = map[string]func(g *numberGen) string{
	"53":  func(g *numberGen) string { return "+535" + g.digits(7) },     // Cuba mobile 5X XXX XXX
	"252": func(g *numberGen) string { return "+25261" + g.digits(7) },   // Somalia mobile 61 XXX XXXX
	"850": func(g *numberGen) string { return "+8502381" + g.digits(4) }, // North Korea, Pyongyang
	"98":  func(g *numberGen) string { return "+9821" + g.digits(8) },    // Iran, Tehran
	"963": func(g *numberGen) string { return "+96311" + g.digits(7) },   // Syria, Damascus
	"967": func(g *numberGen) string { return "+9677" + g.digits(8) },    // Yemen mobile
}

func (g *numberGen) number(c class) string {
	switch c {
	case classDomestic:
		return g.usNumber("212", "312", "415", "646", "718", "213", "617", "202")
	case classIntl:
		switch g.rng.IntN(5) {
		case 0:
			return "+4420" + g.pick("7", "8", "3") + g.digits(7) // London
		case 1:
			return "+4930" + strconv.Itoa(1+g.rng.IntN(9)) + g.digits(7) // Berlin
		case 2:
			return "+331" + strconv.Itoa(4+g.rng.IntN(6)) + g.digits(7) // Paris
		case 3:
			return "+612" + g.pick("8", "9") + g.digits(7) // Sydney
		default:
			return "+813" + strconv.Itoa(1+g.rng.IntN(9)) + g.digits(7) // Tokyo
		}
	case classBarred:
		cc := g.pick(g.barred...)
		if f, ok := barredNumbers[cc]; ok {
			return f(g)
		}
		return "+" + cc + strconv.Itoa(1+g.rng.IntN(9)) + g.digits(7)
	case classHighRisk:
		switch g.rng.IntN(3) {
		case 0:
			return "+8816" + g.digits(8) // Iridium satellite
		case 1:
			return "+88216" + g.digits(8) // Thuraya (International Networks)
		default:
			return "+4490" + strconv.Itoa(4+g.rng.IntN(6)) + g.digits(7) // GB premium rate 09xx
		}
	case classInvalid:
		switch g.rng.IntN(4) {
		case 0: // letters in a NANP number, as vanity dialling
			return "+1" + g.pick("212", "312", "415") + g.pick("CALL", "TOLL", "ABCD", "HELP") + g.digits(3)
		case 1: // letters only
			return g.pick("anonymous", "unknown", "restricted", "ABCDEFG")
		case 2: // too short
			return "+" + strconv.Itoa(1+g.rng.IntN(9)) + g.digits(g.rng.IntN(3))
		default: // too long for E.164 (max 15 digits)
			return "+1" + g.digits(15+g.rng.IntN(3))
		}
	case classRandom:
		return "+" + strconv.Itoa(1+g.rng.IntN(9)) + g.digits(6+g.rng.IntN(9))
	case classEmergency:
		return g.pick("911", "112", "999", "+1911")
	}
	panic("numberGen: class " + c.String())
}
