package teardown

import (
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate/velocity"
)

// The RPC each proxy kind gets for a call, or none when the call's events
// did not say enough to name its dialog safely.
func TestRequest(t *testing.T) {
	d := velocity.Dialog{FromTag: "ft", ToTag: "tt", ID: "1a.2b"}
	for _, c := range []struct {
		kind   Kind
		callID string
		dlg    velocity.Dialog
		want   string // method params, "" for none
	}{
		{Kamailio, "a84b4c76e66710@pc33", d, `dlg.terminate_dlg ["a84b4c76e66710@pc33","ft","tt"]`},
		{Kamailio, "c1", velocity.Dialog{FromTag: "ft"}, ""},
		{Kamailio, "c1", velocity.Dialog{ToTag: "tt"}, ""},
		{OpenSIPS, "a84b4c76e66710@pc33.atlanta.com", velocity.Dialog{}, `dlg_end_dlg {"dialog_id":"a84b4c76e66710@pc33.atlanta.com"}`},
		{OpenSIPS, "1234567890", velocity.Dialog{}, `dlg_end_dlg {"dialog_id":"1234567890"}`}, // no '.': never a dialog id
		{OpenSIPS, "deadbeef.cafe", d, `dlg_end_dlg {"dialog_id":"1a.2b"}`},
		{OpenSIPS, "deadbeef.", d, `dlg_end_dlg {"dialog_id":"1a.2b"}`},
		{OpenSIPS, ".", velocity.Dialog{}, ""},
		{OpenSIPS, "DEAD.BEEF", velocity.Dialog{FromTag: "ft"}, ""},
		{OpenSIPS, "dead.beef.cafe", velocity.Dialog{}, `dlg_end_dlg {"dialog_id":"dead.beef.cafe"}`},
		{Kind(9), "c1", d, ""},
	} {
		m, p, ok := request(c.kind, velocity.LiveCall{CallID: c.callID, Dialog: c.dlg})
		got := ""
		if ok {
			b, _ := json.Marshal(p)
			got = m + " " + string(b)
		}
		if got != c.want {
			t.Errorf("%v %q %+v: %q, want %q", c.kind, c.callID, c.dlg, got, c.want)
		}
	}
}
