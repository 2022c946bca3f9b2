package admin

import (
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Fleet mode's admin surface (docs/fleet.md): GET /v1/fleet, ?wait=all on
// admin writes, the fleet metrics and the /ready detail. Without -nats
// (Options.Fleet nil) none of it exists and nothing changes.

// DefaultWaitAll and MaxWaitAll bound ?wait=all (wait_timeout changes the
// default, up to the maximum).
const (
	DefaultWaitAll = 5 * time.Second
	MaxWaitAll     = 30 * time.Second
)

// fleetInfo serves GET /v1/fleet.
func (h *API) fleetInfo(ctx *fasthttp.RequestCtx) {
	if h.opt.Fleet == nil {
		h.adminError(ctx, fasthttp.StatusNotFound, "fleet mode is off (start tollgate with -nats)", "")
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, h.opt.Fleet.Info())
}

// isWrite reports whether an admin method changes something.
func isWrite(method string) bool {
	return method == "PUT" || method == "POST" || method == "DELETE" || method == "PATCH"
}

// fleetWait runs after an admin write that succeeded and wrote to the
// fleet (the node's last written revision moved past rev0): it names the
// fleet revision of the write in Tollgate-Fleet-Revision and, with
// ?wait=all, holds the answer until every live node has applied it (or
// wait_timeout passed: then 202, with the nodes that had not applied it in
// Tollgate-Fleet-Pending).
func (h *API) fleetWait(ctx *fasthttp.RequestCtx, method string, rev0 uint64) {
	f := h.opt.Fleet
	if f == nil || !isWrite(method) || ctx.Response.StatusCode() >= 300 {
		return
	}
	rev := f.LastWritten()
	if rev <= rev0 {
		return // nothing of this request went to the fleet (a reload, a read)
	}
	ctx.Response.Header.Set("Tollgate-Fleet-Revision", strconv.FormatUint(rev, 10))
	args := ctx.QueryArgs()
	if string(args.Peek("wait")) != "all" {
		return
	}
	timeout := DefaultWaitAll
	if v := args.Peek("wait_timeout"); len(v) > 0 {
		d, err := time.ParseDuration(string(v))
		if err != nil || d <= 0 {
			// the write is done: say so, and why the wait was not
			ctx.Response.Header.Set("Tollgate-Fleet-Wait", "bad wait_timeout (want e.g. 2s); not waited")
			return
		}
		timeout = min(d, MaxWaitAll)
	}
	done, pending, silent := f.WaitAll(rev, timeout)
	ctx.Response.Header.Set("Tollgate-Fleet-Applied", strings.Join(done, ","))
	if len(silent) > 0 {
		// not waited for, and not applied when last heard
		ctx.Response.Header.Set("Tollgate-Fleet-Silent", strings.Join(silent, ","))
	}
	if len(pending) > 0 {
		ctx.Response.Header.Set("Tollgate-Fleet-Pending", strings.Join(pending, ","))
		ctx.SetStatusCode(fasthttp.StatusAccepted)
	}
}
