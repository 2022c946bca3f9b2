// Command genhighrisk regenerates tollgate's default high-risk prefix list,
// matcher/data/highrisk.csv, from libphonenumber's metadata, the ITU's
// non-geographic codes and the curated IRSF file, so that the shipped list
// can always be reproduced and reviewed instead of being hand-edited data of
// unknown origin. Run it from the repository root:
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
	out := flag.String("out", gen.OutPath, "file to write (- for standard output, versioned against "+gen.OutPath+")")
	curated := flag.String("curated", gen.CuratedPath, "curated IRSF ranges (CSV, same columns as the list)")
	version := flag.String("version", "", "version to stamp, YYYY.MM.DD-n (default: keep the existing file's, allowed only if the entries are unchanged)")
	check := flag.Bool("check", false, "do not write: exit 1 if -out differs from what would be generated")
	flag.Parse()
	if flag.NArg() != 0 {
		log.Fatalf("unexpected arguments %q", flag.Args())
	}
	if err := run(*out, *curated, *version, *check, os.Stderr); err != nil {
		log.Fatal(err)
	}
}

func run(out, curatedPath, version string, check bool, logw io.Writer) error {
	cf, err := os.Open(curatedPath)
	if err != nil {
		return err
	}
	curated, err := gen.ReadCurated(cf)
	cf.Close()
	if err != nil {
		return err
	}
	entries, rep, err := gen.Generate(curated)
	if err != nil {
		return err
	}

	// The list the new one replaces: the output file, or the committed list
	// when writing to standard output.
	existing := out
	if out == "-" {
		existing = gen.OutPath
	}
	var old *policy.HighRiskList
	oldBytes, err := os.ReadFile(existing)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		l, err := policy.ParseHighRiskList(bytes.NewReader(oldBytes))
		if err != nil {
			return fmt.Errorf("existing %s: %w", existing, err)
		}
		old = &l
	}
	if version == "" {
		switch {
		case old == nil:
			return errors.New("no existing list to take the version from: pass -version YYYY.MM.DD-n")
		case !reflect.DeepEqual(old.Entries, entries):
			return fmt.Errorf("the entries changed but -version was not given: pass a new -version (the existing list is %q)", old.Meta.Version)
		}
		version = old.Meta.Version
	}
	if err := gen.CheckVersion(version); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := policy.WriteHighRiskList(&buf, policy.HighRiskList{
		Meta:    policy.HighRiskMeta{Version: version, Generated: gen.Generated},
		Entries: entries,
	}); err != nil {
		return err
	}
	fmt.Fprintf(logw, "genhighrisk: %d entries (%v); libphonenumber %s: %d regions with a premium_rate pattern, %d with a shared_cost pattern\n",
		len(entries), rep.ByCategoryCount, gen.LibphonenumberVersion, rep.PatternRegions[policy.CategoryPremiumRate], rep.PatternRegions[policy.CategorySharedCost])
	fmt.Fprintf(logw, "genhighrisk: %d candidates, %d distinct libphonenumber prefixes (%d claimed by several regions), %d exact duplicates dropped, %d covered by a shorter prefix of the same category, %d sibling merges\n",
		rep.Candidates, rep.LibPrefixes, rep.SharedRanges, rep.DupDropped, rep.CoveredDropped, rep.SiblingsMerged)
	for _, d := range rep.CuratedDropped {
		fmt.Fprintf(logw, "genhighrisk: curated entry not used: %s\n", d)
	}
	switch {
	case check:
		if !bytes.Equal(buf.Bytes(), oldBytes) {
			return fmt.Errorf("%s is stale: run go run ./cmd/genhighrisk", existing)
		}
		return nil
	case out == "-":
		_, err = os.Stdout.Write(buf.Bytes())
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".highrisk-*.csv")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
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
