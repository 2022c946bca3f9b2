package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/tollgate/tollgate/handler"
)

// Token rules. A name is shorter than the shortest token, so nothing that
// could be a token is ever taken for a name (and logged or audited as one).
const (
	minTokenLen = 16
	maxNameLen  = 15
)

// validTokenName: 1-15 letters, digits, '-' or '_', starting with a letter.
func validTokenName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_'):
		default:
			return false
		}
	}
	return true
}

// parseTokenEntry reads one token: "name:token", or a bare token named
// defaultName. The text before the first ':' is a name only if it
// follows the name rule; anything else with a ':' is refused as ambiguous
// rather than guessed at. Errors never quote the entry: it may be a
// secret.
func parseTokenEntry(entry, where, defaultName string) (handler.Token, error) {
	name, secret := defaultName, entry
	if before, after, ok := strings.Cut(entry, ":"); ok {
		if !validTokenName(before) {
			return handler.Token{}, fmt.Errorf("%s: the text before ':' is not a token name (1-%d letters, digits, - or _, starting with a letter); a token that contains ':' must be given a name, as name:token", where, maxNameLen)
		}
		name, secret = before, after
	}
	switch {
	case secret == "":
		return handler.Token{}, fmt.Errorf("%s: empty token", where)
	case len(secret) < minTokenLen:
		return handler.Token{}, fmt.Errorf("%s: the token is shorter than %d characters", where, minTokenLen)
	case strings.IndexFunc(secret, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return handler.Token{}, fmt.Errorf("%s: the token contains a space or a control character", where)
	}
	return handler.Token{Name: name, Secret: secret}, nil
}

// parseTokens reads a list of entries (the flag's comma-separated ones or
// the token file's lines) and refuses a name given twice.
func parseTokens(entries []string, what, defaultName string) ([]handler.Token, error) {
	var out []handler.Token
	seen := map[string]bool{}
	for i, e := range entries {
		t, err := parseTokenEntry(e, fmt.Sprintf("%s, entry %d", what, i+1), defaultName)
		if err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%s, entry %d: the name %q is used twice", what, i+1, t.Name)
		}
		seen[t.Name] = true
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no token", what)
	}
	return out, nil
}

// flagTokens splits a token flag's value at commas; a bare token is named
// defaultName.
func flagTokens(flag, v, defaultName string) ([]handler.Token, error) {
	var entries []string
	for _, p := range strings.Split(v, ",") {
		entries = append(entries, strings.TrimSpace(p))
	}
	return parseTokens(entries, flag, defaultName)
}

// fileTokens reads -admin-token-file: one entry per line; blank lines and
// lines starting with # are skipped. Tokens may hold commas here.
func fileTokens(path string) ([]handler.Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-admin-token-file: %w", err)
	}
	defer f.Close()
	var entries []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		entries = append(entries, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-admin-token-file %s: %w", path, err)
	}
	return parseTokens(entries, "-admin-token-file "+path, "admin")
}

var errTwoTokenSources = errors.New("-admin-token and -admin-token-file: give one or the other")
