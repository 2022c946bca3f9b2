package main

import (
	"bufio"
	"bytes"
	"testing"
)

var benchCall = call{to: "+442079460123", account: "acct-004711", from: "+16462000144", srcIP: "10.0.18.103"}

func BenchmarkAppendQuery(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for i := 0; b.Loop(); i++ {
		buf = appendQuery(buf[:0], &benchCall, callID{"lt0badf00d", uint64(i)})
	}
}

func BenchmarkAppendCheckJSON(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for i := 0; b.Loop(); i++ {
		buf = appendCheckJSON(buf[:0], &benchCall, callID{"lt0badf00d", uint64(i)})
	}
}

func BenchmarkAppendRPCNetstring(b *testing.B) {
	b.ReportAllocs()
	payload := make([]byte, 0, 512)
	out := make([]byte, 0, 512)
	for i := 0; b.Loop(); i++ {
		payload = appendRPC(payload[:0], &benchCall, callID{"lt0badf00d", uint64(i)}, uint64(i))
		out = appendNetstring(out[:0], payload)
	}
}

const benchAnswer = `{"verdict":"reject","reason":"country_barred","code":"CB","sip_code":403,"sip_reason":"Forbidden","message":"calls to CU are barred","country":"CU","e164":"+5351234567","account":"acct-004711","rule":"barred:53","max_channels":10,"max_cps":2}`

func BenchmarkParseCheck(b *testing.B) {
	b.ReportAllocs()
	body := []byte(benchAnswer)
	for b.Loop() {
		if v, _, ok := parseCheck(body); !ok || v == nil {
			b.Fatal("parse failed")
		}
	}
}

func BenchmarkParseRPCNetstring(b *testing.B) {
	b.ReportAllocs()
	frame := appendNetstring(nil, []byte(`{"jsonrpc":"2.0","result":`+benchAnswer+`,"id":123456}`))
	r := bytes.NewReader(frame)
	br := bufio.NewReader(r)
	var buf []byte
	for b.Loop() {
		r.Reset(frame)
		br.Reset(r)
		var err error
		buf, err = readNetstring(br, buf)
		if err != nil {
			b.Fatal(err)
		}
		if a, ok := parseRPC(buf, 123456); !ok || a.verdict == nil {
			b.Fatal("parse failed")
		}
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	b.ReportAllocs()
	var h Histogram
	v := int64(1)
	for b.Loop() {
		v = v*6364136223846793005 + 1442695040888963407
		h.Record(v & (1<<30 - 1))
	}
}
