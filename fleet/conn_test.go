package fleet

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		err  string // "" for valid
	}{
		{"off", Config{}, ""},
		{"creds without nats", Config{Creds: "x"}, "need -nats"},
		{"one url", Config{URLs: "nats://127.0.0.1:4222", Node: "n1", Replicas: 3}, ""},
		{"several urls", Config{URLs: "nats://a:4222, nats://b:4222", Node: "n1", Replicas: 1}, ""},
		{"no scheme", Config{URLs: "127.0.0.1:4222", Node: "n1", Replicas: 3}, "want URLs"},
		{"empty entry", Config{URLs: "nats://a:4222,", Node: "n1", Replicas: 3}, "empty URL"},
		{"replicas 0", Config{URLs: "nats://a:4222", Node: "n1"}, "-nats-replicas"},
		{"replicas 7", Config{URLs: "nats://a:4222", Node: "n1", Replicas: 7}, "-nats-replicas"},
		{"bad node", Config{URLs: "nats://a:4222", Node: "n 1", Replicas: 3}, "-node"},
		{"missing creds", Config{URLs: "nats://a:4222", Node: "n1", Replicas: 3, Creds: "/nonexistent/x.creds"}, "-nats-creds"},
		{"hostname default", Config{URLs: "nats://a:4222", Replicas: 3}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Check()
			if tc.err == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
			if err == nil && tc.c.Enabled() && ValidNode(tc.c.Node) != nil {
				t.Fatalf("node %q not valid after Check", tc.c.Node)
			}
		})
	}
}

func TestNodeName(t *testing.T) {
	for in, want := range map[string]string{
		"edge1":                 "edge1",
		"edge1.example.net":     "edge1",
		"edge 1":                "edge-1",
		strings.Repeat("a", 80): strings.Repeat("a", 64),
	} {
		if got := nodeName(in); got != want {
			t.Errorf("nodeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegisterFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-nats", "nats://127.0.0.1:1", "-node", "n2", "-nats-replicas", "1"}); err != nil {
		t.Fatal(err)
	}
	if c.URLs != "nats://127.0.0.1:1" || c.Node != "n2" || c.Replicas != 1 {
		t.Fatalf("flags not set: %+v", c)
	}
	var d Config
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	d.RegisterFlags(fs)
	if d.Replicas != DefaultReplicas || d.Enabled() {
		t.Fatalf("defaults: %+v", d)
	}
}
