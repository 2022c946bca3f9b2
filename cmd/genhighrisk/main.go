// Command genhighrisk regenerates tollgate's default high-risk prefix list,
// matcher/data/highrisk.csv, from libphonenumber's metadata, the ITU's
// non-geographic codes and the curated IRSF ranges, and the recommended
// country denies, matcher/data/recommended_denies.csv, from the curated rows
// that name whole countries, so that both shipped files can always be
// reproduced and reviewed instead of being hand-edited data of unknown
// origin. Run it from the repository root:
//
//	go run ./cmd/genhighrisk                      # keep the version; fails if the content changed
//	go run ./cmd/genhighrisk -version 2025.06.01-2
//
// The output is deterministic: the same inputs give the same bytes. The only
// varying part is the version, which is never taken from the clock: it comes
// from -version or from the existing file, and a content change without a new
// -version is refused, so two different lists never carry the same version.
// docs/highrisk.md explains the sources and rules.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"reflect"

	"github.com/tollgate/tollgate/cmd/genhighrisk/gen"
	"github.com/tollgate/tollgate/policy"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("genhighrisk: ")
	out := flag.String("out", gen.OutPath, "high-risk list to write (- for standard output, versioned against "+gen.OutPath+")")
	deniesOut := flag.String("denies-out", gen.DeniesOutPath, "recommended country denies to write (- for standard output, versioned against "+gen.DeniesOutPath+")")
	curated := flag.String("curated", gen.CuratedPath, "curated IRSF rows (CSV, same columns as the list): ranges and whole countries")
	version := flag.String("version", "", "version to stamp on both files, YYYY.MM.DD-n (default: keep each existing file's, allowed only if its entries are unchanged)")
	check := flag.Bool("check", false, "do not write: exit 1 if -out or -denies-out differs from what would be generated")
	flag.Parse()
	if flag.NArg() != 0 {
		log.Fatalf("unexpected arguments %q", flag.Args())
	}
	if err := run(*out, *deniesOut, *curated, *version, *check, os.Stderr); err != nil {
		log.Fatal(err)
	}
}

// output is one generated file: where it goes, the committed file it is
// versioned against, its entries and its "# generated:" line.
type output struct {
	path, committed, generated string
	entries                    []policy.HighRiskEntry
}

func run(out, deniesOut, curatedPath, version string, check bool, logw io.Writer) error {
	cf, err := os.Open(curatedPath)
	if err != nil {
		return err
	}
	curated, err := gen.ReadCurated(cf)
	cf.Close()
	if err != nil {
		return err
	}
	ranges, denies, err := gen.Split(curated)
	if err != nil {
		return err
	}
	entries, rep, err := gen.Generate(ranges)
	if err != nil {
		return err
	}
	outs := []output{
		{path: out, committed: gen.OutPath, generated: gen.Generated, entries: entries},
		{path: deniesOut, committed: gen.DeniesOutPath, generated: gen.DeniesGenerated, entries: denies},
	}
	bufs := make([][]byte, len(outs))
	olds := make([][]byte, len(outs))
	for i, o := range outs {
		if bufs[i], olds[i], err = render(o, version); err != nil {
			return err
		}
	}
	fmt.Fprintf(logw, "genhighrisk: %d entries (%v); libphonenumber %s: %d regions with a premium_rate pattern, %d with a shared_cost pattern\n",
		len(entries), rep.ByCategoryCount, gen.LibphonenumberVersion, rep.PatternRegions[policy.CategoryPremiumRate], rep.PatternRegions[policy.CategorySharedCost])
	fmt.Fprintf(logw, "genhighrisk: %d candidates, %d distinct libphonenumber prefixes (%d claimed by several regions), %d exact duplicates dropped, %d covered by a shorter prefix of the same category, %d sibling merges\n",
		rep.Candidates, rep.LibPrefixes, rep.SharedRanges, rep.DupDropped, rep.CoveredDropped, rep.SiblingsMerged)
	fmt.Fprintf(logw, "genhighrisk: %d curated rows: %d ranges on the high-risk list, %d whole-country rows in the recommended denies (%d countries)\n",
		len(curated), len(ranges), len(denies), len(gen.Countries(denies)))
	for _, d := range rep.CuratedDropped {
		fmt.Fprintf(logw, "genhighrisk: curated entry not used: %s\n", d)
	}
	if check {
		for i, o := range outs {
			if !bytes.Equal(bufs[i], olds[i]) {
				return fmt.Errorf("%s is stale: run go run ./cmd/genhighrisk", existingPath(o))
			}
		}
		return nil
	}
	for i, o := range outs {
		if err := write(o.path, bufs[i]); err != nil {
			return err
		}
	}
	return nil
}

func existingPath(o output) string {
	if o.path == "-" {
		return o.committed
	}
	return o.path
}

// render produces one file's bytes and returns the existing file's. Without
// a version, the existing file's version is kept, and only if its entries
// are unchanged, so two different lists never carry the same version.
func render(o output, version string) (buf, oldBytes []byte, err error) {
	existing := existingPath(o)
	var old *policy.HighRiskList
	oldBytes, err = os.ReadFile(existing)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, nil, err
	default:
		l, err := policy.ParseHighRiskList(bytes.NewReader(oldBytes))
		if err != nil {
			return nil, nil, fmt.Errorf("existing %s: %w", existing, err)
		}
		old = &l
	}
	if version == "" {
		switch {
		case old == nil:
			return nil, nil, fmt.Errorf("no existing %s to take the version from: pass -version YYYY.MM.DD-n", existing)
		case !sameEntries(old.Entries, o.entries):
			return nil, nil, fmt.Errorf("the entries of %s changed but -version was not given: pass a new -version (the existing file is %q)", existing, old.Meta.Version)
		}
		version = old.Meta.Version
	}
	if err := gen.CheckVersion(version); err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	if err := policy.WriteHighRiskList(&b, policy.HighRiskList{
		Meta:    policy.HighRiskMeta{Version: version, Generated: o.generated},
		Entries: o.entries,
	}); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), oldBytes, nil
}

func write(out string, b []byte) error {
	if out == "-" {
		_, err := os.Stdout.Write(b)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".highrisk-*.csv")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func sameEntries(a, b []policy.HighRiskEntry) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}
