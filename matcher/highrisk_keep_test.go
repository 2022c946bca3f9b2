package matcher

import (
	"runtime"
	"testing"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// TestCompileKeepHighRisk: CompileKeepHighRisk keeps the previous
// snapshot's compiled list whatever the set holds, CompileFrom recognises
// the very slice it compiled, and a snapshot does not keep that slice alive.
func TestCompileKeepHighRisk(t *testing.T) {
	plan := numplan.Default()
	set := testSet()
	set.HighRisk = []policy.HighRiskEntry{{Prefix: "+88213", Country: "001", Category: "satellite", Source: "itu"}}
	prev, err := Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CompileKeepHighRisk(nil, set, plan); err == nil {
		t.Error("CompileKeepHighRisk without a previous snapshot succeeded")
	}
	same, err := CompileFrom(prev, set, plan)
	if err != nil || same.highRisk != prev.highRisk {
		t.Errorf("CompileFrom with the same slice recompiled the list (%v)", err)
	}
	kept := *set
	kept.HighRisk = nil
	k, err := CompileKeepHighRisk(prev, &kept, plan)
	if err != nil || k.highRisk != prev.highRisk || k.Stats().HighRisk != 1 {
		t.Fatalf("CompileKeepHighRisk: %v, %d prefixes", err, k.Stats().HighRisk)
	}
	m := New(plan, Options{})
	m.Swap(k)
	q := Query{To: "+882130000000"}
	if got := m.Decide(&q); got.Rule != RuleHighRisk || got.Reason != ReasonNumberBarred {
		t.Errorf("a kept list's prefix: %v %v, want number_barred by the high-risk rule", got.Reason, got.Rule)
	}
	// Dropping the slice: the snapshots compiled from it do not pin it.
	set.HighRisk = nil
	runtime.GC()
	if prev.srcHighRisk.first.Value() != nil {
		t.Error("the snapshot keeps its high-risk source slice alive")
	}
	runtime.KeepAlive(prev)
	runtime.KeepAlive(k)
}
