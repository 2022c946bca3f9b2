package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

func TestLoopbackOnly(t *testing.T) {
	ok := []string{"127.0.0.1:8080", "127.1.2.3:1", "[::1]:8082", "localhost:8080", "LOCALHOST:80", "[::ffff:127.0.0.1]:80"}
	refused := []string{
		"10.0.0.1:8080", "192.168.1.10:8080", "[2001:db8::1]:8080", "example.com:8080", "0.0.0.0:8080",
		":8080", "[::]:8080", "localhost.example.com:80", "127.0.0.1.nip.io:80", "8.8.8.8:53",
	}
	for _, a := range ok {
		if err := checkTarget(a, false); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	for _, a := range refused {
		err := checkTarget(a, false)
		if err == nil || !strings.Contains(err.Error(), "-allow-remote") {
			t.Errorf("%s not refused (%v)", a, err)
		}
		if err := checkTarget(a, true); err != nil {
			t.Errorf("%s with -allow-remote: %v", a, err)
		}
	}
	for _, a := range []string{"127.0.0.1", "nohost", "127.0.0.1:"} {
		if checkTarget(a, true) == nil {
			t.Errorf("malformed %q accepted", a)
		}
	}
}

// The refusal happens before any packet is sent.
func TestRefusedTargetIsNeverContacted(t *testing.T) {
	var stderr bytes.Buffer
	for _, args := range [][]string{
		{"-addr", "192.0.2.1:8080", "-duration", "1s"},
		{"-transport", "rpc-tcp", "-rpc-addr", "192.0.2.1:8082"},
		{"-transport", "rpc-netstring", "-rpc-addr", "example.com:8082"},
	} {
		stderr.Reset()
		if code := realMain(args, &bytes.Buffer{}, &stderr); code != exitConfig {
			t.Errorf("%v: exit %d, want %d", args, code, exitConfig)
		}
		if !strings.Contains(stderr.String(), "not loopback") {
			t.Errorf("%v: %q", args, stderr.String())
		}
	}
}

func TestFlagValidation(t *testing.T) {
	for _, args := range [][]string{
		{"-transport", "udp"}, {"-mode", "burst"}, {"-rate", "0"}, {"-conns", "-1"}, {"-duration", "0s"},
		{"-timeout", "0s"}, {"-max-errors", "2"}, {"-min-rate-ratio", "-1"}, {"extra"}, {"-mix", "pizza=1"},
		{"-accounts", "0"}, {"-slo-p99", "-1ms"}, {"-max-behind-schedule", "2"},
	} {
		if code := realMain(args, &bytes.Buffer{}, &bytes.Buffer{}); code != exitConfig {
			t.Errorf("%v: exit %d, want %d", args, code, exitConfig)
		}
	}
	o, err := parseFlags([]string{"-rate", "100000"}, &bytes.Buffer{})
	if err != nil || o.conns != 500 {
		t.Fatalf("auto conns at 100000/s: %d %v", o.conns, err)
	}
	o, _ = parseFlags([]string{"-mode", "closed"}, &bytes.Buffer{})
	if o.conns != 64 {
		t.Fatalf("closed-loop default conns %d", o.conns)
	}
}

// End to end over HTTP against an in-test server: -json output, verdicts
// and exit status.
func TestRealMainJSON(t *testing.T) {
	addr := fakeSidecarHTTP(t, nil)
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"-addr", addr, "-transport", "http-get", "-rate", "400", "-duration", "500ms",
		"-warmup", "100ms", "-mix", "domestic=50,barred=25,highrisk=25", "-pool", "40", "-json", "-quiet", "-slo-p99", "0", "-max-behind-schedule", "1",
		"-min-rate-ratio", "0"}, &stdout, &stderr) // the output, not this machine's speed
	var s Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("exit %d, stderr %s, output not JSON: %v\n%s", code, stderr.String(), err, stdout.String())
	}
	if code != exitPass || !s.Pass {
		t.Fatalf("exit %d, failures %v", code, s.Failures)
	}
	if s.Requests != 200 || s.Errors != 0 || s.Verdicts["allow"] != 100 || s.Verdicts["reject"] != 50 || s.Verdicts["screen"] != 50 {
		t.Fatalf("requests %d errors %d verdicts %v", s.Requests, s.Errors, s.Verdicts)
	}
	if s.ByClass["barred"]["reject"] != 50 || s.Latency.P99 <= 0 || s.Latency.Max < s.Latency.P99 {
		t.Fatalf("by class %v, latency %+v", s.ByClass, s.Latency)
	}
	if s.Histogram == "" || s.SendLag == nil {
		t.Fatal("precision or send lag missing")
	}
}

// Errors over the threshold give exit status 1.
func TestRealMainErrorThreshold(t *testing.T) {
	var served atomic.Int64
	addr, _ := startTCP(t, func(c net.Conn) {
		served.Add(1)
		plainServer(c)
	})
	var stdout bytes.Buffer
	// A clean closed-loop run over plain TCP passes…
	code := realMain([]string{"-transport", "rpc-tcp", "-rpc-addr", addr, "-mode", "closed", "-conns", "2",
		"-requests", "50", "-duration", "2s", "-warmup", "0s", "-quiet", "-slo-p99", "0"}, &stdout, &bytes.Buffer{})
	if code != exitPass || served.Load() < 50 {
		t.Fatalf("exit %d, served %d:\n%s", code, served.Load(), stdout.String())
	}
	// …and one against a closed port fails with connect errors.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	stdout.Reset()
	code = realMain([]string{"-transport", "rpc-netstring", "-rpc-addr", closed, "-rate", "100", "-duration", "200ms",
		"-warmup", "0s", "-quiet"}, &stdout, &bytes.Buffer{})
	if code != exitFail || !strings.Contains(stdout.String(), "connect 20") {
		t.Fatalf("exit %d:\n%s", code, stdout.String())
	}
}
