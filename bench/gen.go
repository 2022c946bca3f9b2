package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// GenOptions sizes the generated policy and workload.
type GenOptions struct {
	Accounts int    // accounts in the import file
	Prefixes int    // unique high-risk prefixes, the shipped list included
	Numbers  int    // lines of the loadtest numbers file
	Seed     uint64 // everything generated is a function of the seed
}

// GenResult says what was generated and where.
type GenResult struct {
	AccountsFile, HighRiskFile, NumbersFile string
	Accounts, Subaccounts, Prefixes         int
	ShippedPrefixes                         int
	// Shares is the percentage of each class in the numbers file.
	Shares map[string]float64
	// Samples are domestic calls from the numbers file, most of them
	// allowed; the first allowed one sizes the nginx reference answer.
	Samples [][2]string
}

// home is a home country with the shapes of its own numbers.
type home struct {
	iso    string
	weight int
	// e164 returns a subscriber number in E.164 (with +), national the
	// same number as dialled nationally.
	gen func(r *rand.Rand) (e164, national string)
}

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// nanp returns a NANP number in one of the area codes, with an exchange
// that does not start with 0 or 1 and is not N11.
func nanp(r *rand.Rand, npas []string) (string, string) {
	nxx := strconv.Itoa(200 + r.IntN(800))
	if nxx[1:] == "11" {
		nxx = nxx[:2] + "2"
	}
	n := pick(r, npas) + nxx + digits(r, 4)
	return "+1" + n, n
}

// homes are the account home countries, weighted like a North American and
// European wholesale customer base.
var homes = []home{
	{"US", 40, func(r *rand.Rand) (string, string) {
		return nanp(r, []string{"212", "312", "415", "646", "718", "213", "617", "202", "305", "512", "404", "206"})
	}},
	{"GB", 15, func(r *rand.Rand) (string, string) {
		if r.IntN(3) == 0 {
			n := "7700" + "9" + digits(r, 5)
			return "+44" + n, "0" + n
		}
		n := "20" + pick(r, []string{"3", "7", "8"}) + digits(r, 7)
		return "+44" + n, "0" + n
	}},
	{"DE", 10, func(r *rand.Rand) (string, string) {
		n := pick(r, []string{"30", "40", "69", "89"}) + strconv.Itoa(2+r.IntN(8)) + digits(r, 6)
		return "+49" + n, "0" + n
	}},
	{"FR", 8, func(r *rand.Rand) (string, string) {
		n := pick(r, []string{"1", "4", "6"}) + strconv.Itoa(2+r.IntN(8)) + digits(r, 7)
		return "+33" + n, "0" + n
	}},
	{"CA", 7, func(r *rand.Rand) (string, string) {
		return nanp(r, []string{"416", "604", "514", "403", "613"})
	}},
	{"AU", 6, func(r *rand.Rand) (string, string) {
		n := pick(r, []string{"2", "3", "7", "8"}) + strconv.Itoa(5+r.IntN(4)) + digits(r, 7)
		return "+61" + n, "0" + n
	}},
	{"NL", 5, func(r *rand.Rand) (string, string) {
		n := pick(r, []string{"20", "10", "70"}) + strconv.Itoa(2+r.IntN(8)) + digits(r, 6)
		return "+31" + n, "0" + n
	}},
	{"ES", 5, func(r *rand.Rand) (string, string) {
		n := "91" + strconv.Itoa(2+r.IntN(8)) + digits(r, 6)
		return "+34" + n, n
	}},
	{"IT", 4, func(r *rand.Rand) (string, string) {
		n := "06" + strconv.Itoa(2+r.IntN(8)) + digits(r, 7)
		return "+39" + n, n
	}},
}

// intl are international destinations most accounts may call.
var intl = []func(r *rand.Rand) string{
	func(r *rand.Rand) string { return "+4420" + strconv.Itoa(3+r.IntN(6)) + digits(r, 7) },
	func(r *rand.Rand) string { return "+4930" + strconv.Itoa(2+r.IntN(8)) + digits(r, 7) },
	func(r *rand.Rand) string { return "+331" + strconv.Itoa(2+r.IntN(8)) + digits(r, 7) },
	func(r *rand.Rand) string { return "+612" + strconv.Itoa(5+r.IntN(4)) + digits(r, 7) },
	func(r *rand.Rand) string { return "+813" + strconv.Itoa(2+r.IntN(8)) + digits(r, 7) },
	func(r *rand.Rand) string { return "+5255" + strconv.Itoa(2+r.IntN(8)) + digits(r, 7) },
	func(r *rand.Rand) string { return "+9122" + strconv.Itoa(2+r.IntN(8)) + digits(r, 7) },
	func(r *rand.Rand) string { return "+5511" + strconv.Itoa(2+r.IntN(8)) + digits(r, 7) },
	func(r *rand.Rand) string { s, _ := nanp(r, []string{"212", "415", "416", "604"}); return s },
	func(r *rand.Rand) string { return "+3491" + strconv.Itoa(2+r.IntN(8)) + digits(r, 6) },
	func(r *rand.Rand) string { return "+3120" + strconv.Itoa(2+r.IntN(8)) + digits(r, 6) },
}

// barred are destinations allow-all-except accounts commonly list.
var barred = []func(r *rand.Rand) string{
	func(r *rand.Rand) string { return "+535" + digits(r, 7) },                              // CU mobile
	func(r *rand.Rand) string { return "+25261" + digits(r, 7) },                            // SO mobile
	func(r *rand.Rand) string { return "+8502" + strconv.Itoa(3+r.IntN(6)) + digits(r, 6) }, // KP Pyongyang
	func(r *rand.Rand) string { return "+9821" + strconv.Itoa(2+r.IntN(8)) + digits(r, 7) }, // IR Tehran
	func(r *rand.Rand) string { return "+96311" + strconv.Itoa(2+r.IntN(8)) + digits(r, 6) },
	func(r *rand.Rand) string { return "+9671" + strconv.Itoa(2+r.IntN(8)) + digits(r, 5) },
	func(r *rand.Rand) string { return "+6757" + digits(r, 7) }, // PG, region:melanesia
}

// hrCode is a calling code the synthetic high-risk ranges are drawn from,
// with its country and national number length.
type hrCode struct {
	cc, iso string
	natLen  int
	weight  int
}

// hrCodes spreads the synthetic ranges over the codes IRSF lists are full
// of, and thinly over the big domestic plans (where ranges are long, so they
// cover a sliver of the plan, as real premium-rate ranges do).
var hrCodes = []hrCode{
	{"1", "US", 10, 2}, {"44", "GB", 10, 2}, {"49", "DE", 11, 2}, {"33", "FR", 9, 1}, {"39", "IT", 10, 1},
	{"34", "ES", 9, 1}, {"31", "NL", 9, 1}, {"61", "AU", 9, 1}, {"7", "RU", 10, 3}, {"371", "LV", 8, 4},
	{"370", "LT", 8, 4}, {"372", "EE", 8, 3}, {"375", "BY", 9, 3}, {"373", "MD", 8, 3}, {"381", "RS", 9, 3},
	{"882", "001", 10, 5}, {"883", "001", 10, 4}, {"881", "001", 9, 4}, {"870", "001", 9, 3}, {"979", "001", 9, 2},
	{"252", "SO", 8, 4}, {"53", "CU", 8, 4}, {"850", "KP", 8, 2}, {"675", "PG", 8, 3}, {"677", "SB", 7, 3},
	{"678", "VU", 7, 3}, {"679", "FJ", 7, 3}, {"686", "KI", 8, 2}, {"688", "TV", 6, 2}, {"690", "TK", 5, 1},
	{"960", "MV", 7, 3}, {"880", "BD", 10, 3}, {"234", "NG", 10, 3}, {"225", "CI", 10, 3}, {"243", "CD", 9, 3},
	{"220", "GM", 7, 3}, {"232", "SL", 8, 3}, {"231", "LR", 8, 3}, {"224", "GN", 9, 3}, {"216", "TN", 8, 3},
	{"254", "KE", 9, 2}, {"255", "TZ", 9, 2}, {"256", "UG", 9, 2}, {"263", "ZW", 9, 2}, {"591", "BO", 8, 2},
	{"592", "GY", 7, 2}, {"509", "HT", 8, 2}, {"993", "TM", 8, 2}, {"992", "TJ", 9, 2}, {"996", "KG", 9, 2},
}

var hrCategories = []string{policy.CategoryIRSF, policy.CategoryIRSF, policy.CategoryPremiumRate, policy.CategorySharedCost}

// Generate writes the accounts import file, the high-risk CSV and the
// loadtest numbers file into dir.
func Generate(dir string, o GenOptions) (*GenResult, error) {
	res := &GenResult{
		AccountsFile: dir + "/accounts.ndjson",
		HighRiskFile: dir + "/highrisk.csv",
		NumbersFile:  dir + "/numbers.txt",
	}
	hr, shipped, err := genHighRisk(res.HighRiskFile, o)
	if err != nil {
		return nil, err
	}
	res.Prefixes, res.ShippedPrefixes = len(hr), shipped
	accts, subs, err := genAccounts(res.AccountsFile, o)
	if err != nil {
		return nil, err
	}
	res.Accounts, res.Subaccounts = len(accts), subs
	if err := genNumbers(res, accts, hr, o); err != nil {
		return nil, err
	}
	return res, nil
}

// genHighRisk writes the shipped list plus synthetic unique ranges up to
// o.Prefixes entries and returns the prefixes.
func genHighRisk(path string, o GenOptions) ([]string, int, error) {
	shipped, err := matcher.DefaultHighRisk()
	if err != nil {
		return nil, 0, err
	}
	if len(shipped) > o.Prefixes {
		shipped = shipped[:o.Prefixes]
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "# version: bench-%d-%d\n# generated: by go run ./bench (the shipped list plus synthetic ranges, seed %d)\n%s\n",
		o.Prefixes, o.Seed, o.Seed, policy.HighRiskHeader)
	cw := csv.NewWriter(w)
	seen := make(map[string]struct{}, o.Prefixes)
	out := make([]string, 0, o.Prefixes)
	for _, e := range shipped {
		if _, dup := seen[e.Prefix]; dup {
			continue
		}
		seen[e.Prefix] = struct{}{}
		out = append(out, e.Prefix)
		if err := cw.Write([]string{e.Prefix, e.Country, e.Category, e.Source}); err != nil {
			return nil, 0, err
		}
	}
	if cw.Flush(); cw.Error() != nil {
		return nil, 0, cw.Error()
	}
	nShipped := len(out)
	r := rand.New(rand.NewPCG(o.Seed, 0x68726973))
	total := 0
	for _, c := range hrCodes {
		total += c.weight
	}
	for len(out) < o.Prefixes {
		n := r.IntN(total)
		var c hrCode
		for _, c = range hrCodes {
			if n < c.weight {
				break
			}
			n -= c.weight
		}
		// Ranges are 2-4 digits shorter than a full number: a block of
		// 100 to 10,000 numbers.
		extra := max(2, c.natLen-2-r.IntN(3))
		d := digits(r, extra)
		if d[0] == '0' && c.cc != "1" {
			d = "1" + d[1:] // a national number rarely starts with 0 in E.164
		}
		if c.cc == "1" && d[0] < '2' {
			d = "2" + d[1:] // nor an area code with 0 or 1
		}
		p := "+" + c.cc + d
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		out = append(out, p)
		fmt.Fprintf(w, "%s,%s,%s,bench synthetic range (seed %d)\n", p, c.iso, hrCategories[r.IntN(len(hrCategories))], o.Seed)
	}
	if err := w.Flush(); err != nil {
		return nil, 0, err
	}
	return out, nShipped, f.Close()
}

// genAccount is a generated account with its home.
type genAccount struct {
	name string
	home int // index into homes
}

func sp(s string) *string      { return &s }
func ip(n int) *int            { return &n }
func lp(s ...string) *[]string { return &s }
func cr(d string, ex ...string) *policy.CountryRule {
	return &policy.CountryRule{Default: d, Except: ex}
}

// genAccounts writes the import file: a mix of home countries,
// allow-all-except and deny-all-except rules with selectors, prefix lists,
// high-risk opt-ins, caps and subaccounts.
func genAccounts(path string, o GenOptions) ([]genAccount, int, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(o.Seed, 0x61636374))
	totalW := 0
	for _, h := range homes {
		totalW += h.weight
	}
	barredPool := []string{"CU", "SO", "KP", "IR", "SY", "YE", "region:melanesia", "region:micronesia", "region:polynesia", "001", "LV", "LT", "BY", "region:western-africa"}
	accts := make([]genAccount, 0, o.Accounts)
	subs := 0
	enc := json.NewEncoder(w)
	for i := 1; i <= o.Accounts; i++ {
		n := r.IntN(totalW)
		hi := 0
		for hi = range homes {
			if n < homes[hi].weight {
				break
			}
			n -= homes[hi].weight
		}
		h := homes[hi]
		a := policy.Account{Policy: policy.Policy{HomeCountry: sp(h.iso)}}
		switch x := r.IntN(100); {
		case x < 60: // allow all except a few barred destinations
			k := 1 + r.IntN(6)
			ex := make([]string, 0, k)
			for _, j := range r.Perm(len(barredPool))[:k] {
				ex = append(ex, barredPool[j])
			}
			a.Countries = cr(policy.Allow, ex...)
		case x < 85: // deny all except a region
			a.Countries = pick(r, []*policy.CountryRule{
				cr(policy.Deny, "continent:NA"),
				cr(policy.Deny, "nanp", "continent:EU"),
				cr(policy.Deny, h.iso, "continent:EU"),
				cr(policy.Deny, "continent:EU", "continent:NA", "AU", "NZ", "JP"),
				cr(policy.Deny, h.iso),
				cr(policy.Deny, "region:northern-america", "region:western-europe", "region:northern-europe", "region:southern-europe"),
			})
		}
		if r.IntN(10) == 0 {
			a.AllowPrefixes = lp(pick(r, [][]string{{"+4420"}, {"+3314", "+3315"}, {"+53"}, {"+88216"}, {"+1876"}})...)
		}
		if r.IntN(7) == 0 {
			bl := []string{"+4470", "+4487", "+3368", "+88216", "+1900", "+1976", "+4990", "+3289", "+447624"}
			k := 1 + r.IntN(5)
			list := make([]string, 0, k)
			for _, j := range r.Perm(len(bl))[:k] {
				list = append(list, bl[j])
			}
			a.BlockPrefixes = &list
		}
		if r.IntN(20) == 0 {
			a.HighRisk = sp(policy.HighRiskAllow)
		}
		if r.IntN(10) < 7 {
			a.MaxChannels = ip(pick(r, []int{10, 30, 60, 100, 160, 300, 500}))
		}
		if r.IntN(10) < 6 {
			a.MaxCPS = ip(pick(r, []int{1, 2, 5, 10, 20, 50}))
		}
		if r.IntN(10) == 0 {
			a.Subaccounts = map[string]policy.Policy{}
			for s := 1 + r.IntN(3); s > 0; s-- {
				var p policy.Policy
				switch r.IntN(3) {
				case 0:
					p.MaxChannels = ip(5 + r.IntN(50))
				case 1:
					p.Countries = cr(policy.Deny, h.iso)
				default:
					p.HighRisk = sp(policy.HighRiskAllow)
					p.BlockPrefixes = lp("+88216")
				}
				a.Subaccounts["sub-"+strconv.Itoa(s)] = p
				subs++
			}
		}
		name := fmt.Sprintf("acct-%06d", i)
		if err := enc.Encode(struct {
			Account string          `json:"account"`
			Policy  *policy.Account `json:"policy"`
		}{name, &a}); err != nil {
			return nil, 0, err
		}
		accts = append(accts, genAccount{name: name, home: hi})
	}
	if err := w.Flush(); err != nil {
		return nil, 0, err
	}
	return accts, subs, f.Close()
}

// Workload classes of the numbers file and their weights, in percent.
var numberClasses = []struct {
	name   string
	weight int
}{
	{"domestic", 35}, {"national", 5}, {"intl", 30}, {"barred", 10}, {"highrisk", 10}, {"invalid", 5}, {"random", 5},
}

// genNumbers writes "number,account" lines: the shares of numberClasses
// exactly (largest remainder), shuffled, accounts drawn uniformly.
func genNumbers(res *GenResult, accts []genAccount, hr []string, o GenOptions) error {
	r := rand.New(rand.NewPCG(o.Seed, 0x6e756d73))
	classes := make([]string, 0, o.Numbers)
	res.Shares = map[string]float64{}
	for _, c := range numberClasses {
		n := o.Numbers * c.weight / 100
		for i := 0; i < n; i++ {
			classes = append(classes, c.name)
		}
	}
	for len(classes) < o.Numbers {
		classes = append(classes, "domestic")
	}
	r.Shuffle(len(classes), func(i, j int) { classes[i], classes[j] = classes[j], classes[i] })
	for _, c := range classes {
		res.Shares[c] += 100 / float64(len(classes))
	}
	f, err := os.Create(res.NumbersFile)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "# tollgate bench workload, seed %d: %d numbers; classes %s\n", o.Seed, o.Numbers, classSummary())
	invalid := []string{"anonymous", "+1212CALL123", "+4", "+12", "+4420712345678901234", "sip:bob", "0000000"}
	for _, c := range classes {
		a := accts[r.IntN(len(accts))]
		var to string
		switch c {
		case "domestic":
			to, _ = homes[a.home].gen(r)
		case "national":
			_, to = homes[a.home].gen(r)
		case "intl":
			to = pick(r, intl)(r)
		case "barred":
			to = pick(r, barred)(r)
		case "highrisk":
			p := pick(r, hr)
			to = p + digits(r, max(1, 13-len(p))) // 12 digits in all
		case "invalid":
			to = pick(r, invalid)
		case "random":
			to = "+" + strconv.Itoa(1+r.IntN(9)) + digits(r, 6+r.IntN(9))
		}
		if c == "domestic" && len(res.Samples) < 20 {
			res.Samples = append(res.Samples, [2]string{to, a.name})
		}
		fmt.Fprintf(w, "%s,%s\n", to, a.name)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func classSummary() string {
	var b strings.Builder
	for i, c := range numberClasses {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d%%", c.name, c.weight)
	}
	return b.String()
}

// fileSize is the size of a file in bytes, 0 if it cannot be read.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
