package teardown

import (
	"fmt"
	"net/url"
	"strings"
)

// Kind is the control interface a proxy speaks.
type Kind uint8

// Proxy kinds.
const (
	// Kamailio is Kamailio's JSON-RPC over HTTP (jsonrpcs + xhttp); a
	// dialog is ended with dlg.terminate_dlg Call-ID from-tag to-tag.
	Kamailio Kind = iota + 1
	// OpenSIPS is OpenSIPS's MI over HTTP (mi_http, JSON-RPC); a dialog is
	// ended with dlg_end_dlg dialog_id.
	OpenSIPS
)

var kindNames = map[string]Kind{"kamailio": Kamailio, "opensips": OpenSIPS}

func (k Kind) String() string {
	for n, v := range kindNames {
		if v == k {
			return n
		}
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Proxy is one proxy's control interface, from tollgate's own flags: the
// only addresses a teardown ever sends to.
type Proxy struct {
	// ID is what the proxy's call events name it by ("proxy").
	ID   string
	Kind Kind
	// URL is the control endpoint, e.g. http://127.0.0.1:5071/RPC.
	URL string
}

// MaxIDLen bounds a proxy id.
const MaxIDLen = 64

// ValidID reports whether s can name a proxy: 1-64 of A-Z a-z 0-9 . _ -.
// No ':' or '/' so that nothing that looks like an address is ever taken
// for a proxy's name.
func ValidID(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ParseProxies reads -proxy-control: comma-separated id=kind:url entries,
// e.g. "edge1=kamailio:http://127.0.0.1:5071/RPC,edge2=opensips:http://10.0.0.2:8888/mi".
// Ids are unique; URLs are http or https with a host.
func ParseProxies(s string) ([]Proxy, error) {
	var out []Proxy
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, rest, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want id=kind:url", part)
		}
		if !ValidID(id) {
			return nil, fmt.Errorf("%q: proxy id %q: want 1-%d of A-Z a-z 0-9 . _ -", part, id, MaxIDLen)
		}
		if seen[id] {
			return nil, fmt.Errorf("proxy id %q given twice", id)
		}
		kind, raw, ok := strings.Cut(rest, ":")
		k, known := kindNames[kind]
		if !ok || !known {
			return nil, fmt.Errorf("%q: kind %q: want kamailio or opensips", part, kind)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("%q: url %q: want http(s)://host:port/path", part, raw)
		}
		seen[id] = true
		out = append(out, Proxy{ID: id, Kind: k, URL: raw})
	}
	return out, nil
}
