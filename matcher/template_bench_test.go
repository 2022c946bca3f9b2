package matcher

import (
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// templateBenchSet is synthSet's 100,000 accounts with every account on
// one template. The high-risk list is short: a template change reuses the
// compiled list whatever its size, so 1,000,000 prefixes would only slow
// the setup.
func templateBenchSet() *policy.Set {
	set := synthSet(100_000, 1_000, 1)
	set.Templates = map[string]policy.Template{"retail": {Policy: policy.Policy{
		Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:EU", "continent:NA"}},
		MaxCPS:    ip(5),
	}}}
	for n, a := range set.Accounts {
		a.Template = "retail"
		set.Accounts[n] = a
	}
	return set
}

// changedTemplate is the bench template with its max_cps set to i: a new
// source, as a PUT /v1/templates/retail makes.
func changedTemplate(set *policy.Set, i int) policy.Template {
	t := set.Templates["retail"]
	t.MaxCPS = ip(1 + i%50)
	return t
}

// BenchmarkTemplateChangeCompileFrom changes a template 100,000 accounts
// use, through CompileFrom: it walks every account and recompiles each on
// the template (here all of them) over the new one.
func BenchmarkTemplateChangeCompileFrom(b *testing.B) {
	set := templateBenchSet()
	plan := numplan.Default()
	prev, err := Compile(set, plan)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := 0; i < b.N; i++ {
		next := *set
		next.Templates = map[string]policy.Template{"retail": changedTemplate(set, i)}
		if prev, err = CompileFrom(prev, &next, plan); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTemplateChangeWithTemplate is the same change as the service
// makes it: WithTemplate recompiles the template and the accounts that
// name it (set.AccountsOn walks the set for them) into one new snapshot.
func BenchmarkTemplateChangeWithTemplate(b *testing.B) { benchTemplateChange(b, false) }

// benchTemplateChange changes the template "retail" b.N times with
// WithTemplateAgainst, on a snapshot from Compile (was nil: the layers'
// own sources decide) or, against, from CompileAgainst (the set's
// accounts decide).
func benchTemplateChange(b *testing.B, against bool) {
	set := templateBenchSet()
	plan := numplan.Default()
	var was map[string]policy.Account
	prev, err := Compile(set, plan)
	if against {
		was = set.Accounts
		prev, err = CompileAgainst(nil, nil, set, plan, false)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := 0; i < b.N; i++ {
		t := changedTemplate(set, i)
		if prev, err = prev.WithTemplateAgainst("retail", &t, set.AccountsOn("retail"), was); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.KeepAlive(prev)
}

// BenchmarkTemplateChangeUnused changes a template no account uses beside
// 100,000 accounts on another: WithTemplate compiles the template alone.
func BenchmarkTemplateChangeUnused(b *testing.B) {
	set := templateBenchSet()
	plan := numplan.Default()
	prev, err := Compile(set, plan)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := 0; i < b.N; i++ {
		t := policy.Template{Policy: policy.Policy{MaxChannels: ip(i % 100)}}
		if prev, err = prev.WithTemplate("spare-"+strconv.Itoa(i%2), &t, set.AccountsOn("spare-"+strconv.Itoa(i%2))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTemplateCompileFull compiles the same set from nothing: the
// cost a template change would have without the incremental paths.
func BenchmarkTemplateCompileFull(b *testing.B) {
	set := templateBenchSet()
	plan := numplan.Default()
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := 0; i < b.N; i++ {
		if _, err := Compile(set, plan); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU reports the process's CPU time per op since cpu0 (getrusage:
// user and system, garbage collection included): on a shared machine it
// moves far less with the load than ns/op, which counts waiting for a core.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTemplateChangeWithTemplateAgainst is the same change on a
// snapshot from CompileAgainst, as the service makes it.
func BenchmarkTemplateChangeWithTemplateAgainst(b *testing.B) { benchTemplateChange(b, true) }
