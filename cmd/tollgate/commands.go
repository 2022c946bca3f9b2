package main

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// command is a subcommand of tollgate: `tollgate NAME args…`. Add a row to
// add one; `tollgate -h` and `tollgate help` list them all.
type command struct {
	name, args, summary string
	run                 func(args []string, stdout, stderr io.Writer) int
}

// commands are tollgate's subcommands; without one, tollgate runs the
// daemon.
var commands = []command{
	{"check", "--account A [--subaccount S] [--from F] [--src-ip IP] NUMBER", "print the decision for one call (from the data dir, or the running daemon)", nil},
	{"import", "[-data-dir D] [-dry-run] FILE.ndjson", "create or replace accounts from a file, in one transaction (daemon stopped)", nil},
	{"replay", "[flags] FILE.csv", "decide the calls of a CSV export against the data dir's policy (and, with -change, a proposed one); report what changes", nil},
	{"what-if", "[flags] change.json", "ask the running daemon what a policy change would do to its recent traffic; nothing is applied", nil},
	{"admin", "COMMAND …", "manage a running daemon over its admin API: accounts, bulk, lock, alerts, audit, stats, high-risk", nil},
	{"help", "[COMMAND]", "this list, or a command's usage", nil},
	{"version", "", "print the version (also -version)", nil},
}

func init() {
	run := map[string]func([]string, io.Writer, io.Writer) int{
		"check": runCheck, "import": runImport, "admin": runAdmin, "help": runHelp, "version": runVersion,
		"replay": runReplay, "what-if": runWhatIf,
	}
	for i := range commands {
		if commands[i].run == nil {
			commands[i].run = run[commands[i].name]
		}
	}
}

// findCommand returns the subcommand args[0] names, if any.
func findCommand(args []string) *command {
	if len(args) == 0 {
		return nil
	}
	for i := range commands {
		if commands[i].name == args[0] {
			return &commands[i]
		}
	}
	return nil
}

// commandsUsage lists the subcommands for `tollgate -h`.
func commandsUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: tollgate [flags]            run the daemon (flags below)\n")
	for _, c := range commands {
		fmt.Fprintf(w, "       tollgate %-10s %s\n", c.name, c.args)
	}
	fmt.Fprintf(w, "\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n`tollgate help COMMAND` (or `tollgate COMMAND -h`) shows a command's flags.\n")
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		parseFlags([]string{"-h"}, stdout) // prints the commands and the daemon's flags
		return 0
	}
	c := findCommand(args)
	if c == nil || c.name == "help" {
		fmt.Fprintf(stderr, "tollgate help: no command %q; the commands are %s\n", args[0], commandNames())
		return exitUsage
	}
	c.run(append(args[1:len(args):len(args)], "-h"), stdout, stdout)
	return 0
}

func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// version is the module version the binary was built from (a tag, or a
// pseudo-version), with the VCS revision when the build recorded one.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + bi.GoVersion
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, "tollgate", version())
	return 0
}

// parseInterleaved parses flags placed before, between or after the
// positional arguments ("tollgate admin lock acme -reason x") and returns
// the positional ones; "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first non-flag, or after "--" (then all
		// that is left is positional).
		if i := len(rest) - len(left); i > 0 && rest[i-1] == "--" {
			return append(pos, left...), nil
		}
		pos = append(pos, left[0])
		rest = left[1:]
	}
}
