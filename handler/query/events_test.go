package query

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
)

func TestDecodeEvents(t *testing.T) {
	evs, err := DecodeEvents([]byte(`[
		{"event":"answered","call_id":"c1","account":"acme","subaccount":"sales","to":"+33142685300","time":1772445600},
		{"event":"ended","call_id":"c1","account":1234,"to":"+33142685300","time":"2026-03-02T10:05:00Z","duration":"300.5","extra":true},
		{"event":"ended","call_id":"c2","account":"acme","subaccount":null}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []velocity.Event{
		{Kind: velocity.Answered, CallID: "c1", Account: "acme", Subaccount: "sales", To: "+33142685300", Time: time.Unix(1772445600, 0).UTC(), Duration: -1},
		{Kind: velocity.Ended, CallID: "c1", Account: "1234", To: "+33142685300", Time: time.Date(2026, 3, 2, 10, 5, 0, 0, time.UTC), Duration: 300500 * time.Millisecond},
		{Kind: velocity.Ended, CallID: "c2", Account: "acme", Duration: -1},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("got  %+v\nwant %+v", evs, want)
	}
	if evs, err := DecodeEvents([]byte(` {"event":"ended","call_id":"x","account":"a","duration":0} `)); err != nil || len(evs) != 1 || evs[0].Duration != 0 {
		t.Errorf("single object: %+v %v", evs, err)
	}
	// the proxy and the dialog: what a teardown needs; unknown members
	// (a control URL among them) are ignored, never used
	evs, err = DecodeEvents([]byte(`{"event":"answered","call_id":"c9","account":"acme","proxy":"edge-1.lon",` +
		`"dialog":{"from_tag":"ft9","to_tag":"tt9","id":1234,"url":"http://203.0.113.9/RPC"},"control_url":"http://203.0.113.9/RPC"}`))
	wantD := velocity.Event{Kind: velocity.Answered, CallID: "c9", Account: "acme", Duration: -1, Proxy: "edge-1.lon",
		Dialog: velocity.Dialog{FromTag: "ft9", ToTag: "tt9", ID: "1234"}}
	if err != nil || len(evs) != 1 || !reflect.DeepEqual(evs[0], wantD) {
		t.Errorf("proxy and dialog: %+v %v", evs, err)
	}
	if evs, err := DecodeEvents([]byte(`{"event":"answered","call_id":"c9","account":"acme","proxy":null,"dialog":null}`)); err != nil || evs[0].Proxy != "" || evs[0].Dialog != (velocity.Dialog{}) {
		t.Errorf("null proxy and dialog: %+v %v", evs, err)
	}
	many := "[" + strings.Repeat(`{"event":"ended","call_id":"x","account":"a"},`, MaxEvents) + `{"event":"ended","call_id":"x","account":"a"}]`
	for _, c := range []struct{ in, field, msg string }{
		{``, "body", "empty"},
		{`[]`, "body", "no events"},
		{`[1`, "body", "malformed JSON"},
		{`"x"`, "body", "expected"},
		{many, "body", "more than 500"},
		{`{"event":"ringing","call_id":"x","account":"a"}`, "event", `"ringing"`},
		{`{"call_id":"x","account":"a"}`, "event", "required"},
		{`[{"event":"ended","call_id":"x","account":"a"},{"event":"ended","account":"a"}]`, "events[1].call_id", "required"},
		{`{"event":"ended","call_id":"x"}`, "account", "required"},
		{`{"event":"ended","call_id":["x"],"account":"a"}`, "call_id", "must be a string"},
		{`{"event":"ended","call_id":"x","account":"a","to":"` + strings.Repeat("1", 257) + `"}`, "to", "longer than 256"},
		{`{"event":"ended","call_id":"x","account":"a","time":"yesterday"}`, "time", "neither unix seconds"},
		{`{"event":"ended","call_id":"x","account":"a","time":-5}`, "time", "plausible"},
		{`{"event":"ended","call_id":"x","account":"a","time":true}`, "time", "unix seconds"},
		{`{"event":"ended","call_id":"x","account":"a","duration":-1}`, "duration", "between 0 and"},
		{`{"event":"ended","call_id":"x","account":"a","duration":"long"}`, "duration", "between 0 and"},
		{`{"event":"ended","call_id":"x","account":"a","duration":{}}`, "duration", "number of seconds"},
		{`[{"event":"ended","call_id":"x","account":"a"},{"event":1,"call_id":"x","account":"a"}]`, "events[1].event", `"1"`},
		{`[{"event":"ended","call_id":"x","account":"a"},"no"]`, "events[1]", "expected"},
		{`{"event":"answered","call_id":"x","account":"a","proxy":"http://203.0.113.9:5071/RPC"}`, "proxy", "not a proxy id"},
		{`{"event":"answered","call_id":"x","account":"a","proxy":"edge 1"}`, "proxy", "not a proxy id"},
		{`{"event":"answered","call_id":"x","account":"a","proxy":"edge1","proxy":"edge9"}`, "proxy", "more than once"},
		{`{"event":"answered","call_id":"x","account":"a","dialog":{},"dialog":{"from_tag":"f"}}`, "dialog", "more than once"},
		{`{"event":"answered","call_id":"x","account":"a","proxy":{"url":"http://x"}}`, "proxy", "must be a string"},
		{`{"event":"answered","call_id":"x","account":"a","dialog":"ft;tt"}`, "dialog", "expected"},
		{`{"event":"answered","call_id":"x","account":"a","dialog":{"from_tag":["a"]}}`, "dialog.from_tag", "must be a string"},
		{`{"event":"answered","call_id":"x","account":"a","dialog":{"to_tag":"` + strings.Repeat("t", 257) + `"}}`, "dialog.to_tag", "longer than 256"},
		{`[{"event":"ended","call_id":"x","account":"a"},{"event":"answered","call_id":"x","account":"a","dialog":{"id":true}}]`, "events[1].dialog.id", "must be a string"},
	} {
		evs, err := DecodeEvents([]byte(c.in))
		var fe *policy.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) || evs != nil {
			t.Errorf("%.60s: %v (field %q), want %s: …%s…", c.in, err, fieldOf(err), c.field, c.msg)
		}
	}
}

func fieldOf(err error) string {
	var fe *policy.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// FuzzDecodeEvents: no input panics; an error never comes with events; what
// is accepted is within the limits and survives a re-encode.
func FuzzDecodeEvents(f *testing.F) {
	for _, s := range []string{
		`{"event":"answered","call_id":"c1","account":"acme","to":"+33142685300","time":1772445600}`,
		`[{"event":"ended","call_id":"c1","account":1,"duration":"1.5","time":"2026-03-02T10:05:00Z"}]`,
		`[]`, `{`, `[{"event":"ended"}]`, `{"event":"ended","call_id":"\u0000","account":"a","duration":1e3}`,
		`{"event":"answered","call_id":"c1","account":"a","proxy":"edge1","dialog":{"from_tag":"f","to_tag":"t","id":"1"}}`,
		`{"event":"answered","call_id":"c1","account":"a","proxy":"http://x/","dialog":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := DecodeEvents(b)
		if err != nil {
			if evs != nil || fieldOf(err) == "" {
				t.Fatalf("error %v (no field?) with events %v", err, evs)
			}
			return
		}
		if len(evs) == 0 || len(evs) > MaxEvents {
			t.Fatalf("%d events", len(evs))
		}
		var again []map[string]any
		for _, ev := range evs {
			if ev.CallID == "" || ev.Account == "" || len(ev.To) > MaxFieldLen || ev.Duration > maxEventDuration ||
				(ev.Kind == velocity.Answered && ev.Duration != -1) || (ev.Proxy != "" && !teardown.ValidID(ev.Proxy)) ||
				len(ev.Dialog.FromTag) > MaxFieldLen || len(ev.Dialog.ToTag) > MaxFieldLen || len(ev.Dialog.ID) > MaxFieldLen {
				t.Fatalf("accepted %+v", ev)
			}
			m := map[string]any{"event": velocity.EventKindNames[ev.Kind], "call_id": ev.CallID, "account": ev.Account,
				"subaccount": ev.Subaccount, "to": ev.To, "proxy": ev.Proxy,
				"dialog": map[string]string{"from_tag": ev.Dialog.FromTag, "to_tag": ev.Dialog.ToTag, "id": ev.Dialog.ID}}
			if !ev.Time.IsZero() {
				m["time"] = ev.Time.Format(time.RFC3339Nano)
			}
			if ev.Duration >= 0 {
				m["duration"] = ev.Duration.Seconds()
			}
			again = append(again, m)
		}
		b2, _ := json.Marshal(again)
		evs2, err := DecodeEvents(b2)
		if err != nil || len(evs2) != len(evs) {
			t.Fatalf("re-encoded events refused: %v\n%s", err, b2)
		}
		for i := range evs {
			if evs[i].CallID != evs2[i].CallID || evs[i].Kind != evs2[i].Kind || !evs[i].Time.Equal(evs2[i].Time) ||
				evs[i].Proxy != evs2[i].Proxy || evs[i].Dialog != evs2[i].Dialog {
				t.Fatalf("round trip changed %+v into %+v", evs[i], evs2[i])
			}
		}
	})
}
