package handler

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/whatif"
	"github.com/valyala/fasthttp"
)

// whatIfState is the handler's part of issue #16: the shadow policy in
// force (read lock-free by every query) and the locks of the admin side.
type whatIfState struct {
	shadowMu sync.Mutex // PUT, DELETE, promote and rebase of the shadow
	replayMu sync.Mutex // one what-if replay at a time (CPU and memory)
}

// observe is the query path's hook: the query goes into the recent-traffic
// ring, and a shadow policy, when one is installed, decides it too. No
// lock, no allocation.
func (h *Handler) observe(q *matcher.Query, v *matcher.Verdict, at time.Time) {
	if r := h.opt.Recent; r != nil {
		if at.IsZero() || h.opt.Now != nil {
			at = h.now()
		}
		r.Add(at, q.Account, q.Subaccount, q.To, v.E164Bytes(), q.SrcIP, uint8(v.Action), uint8(v.Reason), v.Country)
	}
	if sh := h.shadow.Load(); sh != nil {
		var vel matcher.Velocity
		if h.vel != nil {
			vel = h.vel
		}
		sh.Observe(h.m, vel, q, v)
		if sh.Stale(h.m.Snapshot()) {
			go h.rebaseShadow(sh)
		}
	}
}

// rebaseShadow compiles the shadow's change again over the live policy,
// which moved since: the shadow keeps comparing the change alone, not the
// change and whatever was written since. A change that no longer applies
// drops the shadow, loudly.
func (h *Handler) rebaseShadow(sh *whatif.Shadow) {
	h.wi.shadowMu.Lock()
	defer h.wi.shadowMu.Unlock()
	if h.shadow.Load() != sh || h.svc == nil {
		return
	}
	p, err := h.svc.Propose(sh.Edits.([]service.Edit))
	if err != nil {
		h.shadow.Store(nil)
		h.log.Error().Err(err).Msg("shadow policy dropped: its change no longer applies to the policy in force")
		return
	}
	h.shadow.Store(sh.Rebased(p.NextSnap, p.BaseSnap))
}

// serveWhatIf and serveShadow are the route table's handlers of issue #16.
func serveWhatIf(h *Handler, ctx *fasthttp.RequestCtx, r *adminReq) { h.whatIf(ctx) }

func serveShadow(h *Handler, ctx *fasthttp.RequestCtx, r *adminReq) {
	if r.route.Pattern == "/v1/shadow/promote" {
		h.promoteShadow(ctx, r.who)
		return
	}
	h.shadowRoute(ctx, r.who, r.method)
}

// changeRequest is the body of POST /v1/what-if and PUT /v1/shadow.
type changeRequest struct {
	Edits []service.Edit `json:"edits"`
	// Examples bounds the changed calls a what-if shows (default 20, at
	// most 1000).
	Examples int `json:"examples,omitempty"`
}

func (h *Handler) decodeChange(ctx *fasthttp.RequestCtx) (*changeRequest, bool) {
	var req changeRequest
	if err := decodeBody(ctx.PostBody(), &req); err != nil {
		h.fail(ctx, err)
		return nil, false
	}
	if req.Examples < 0 || req.Examples > 1000 {
		h.fail(ctx, &service.InvalidError{Err: &policy.FieldError{Field: "examples", Msg: "must be 0 to 1000"}})
		return nil, false
	}
	return &req, true
}

// whatIfJSON is the answer of POST /v1/what-if.
type whatIfJSON struct {
	// Ring says what the replay had: the ring's size and age bounds.
	RingSize   int    `json:"ring_size"`
	RingMaxAge string `json:"ring_max_age"`
	*whatif.Report
}

func (h *Handler) whatIf(ctx *fasthttp.RequestCtx) {
	req, ok := h.decodeChange(ctx)
	if !ok {
		return
	}
	if h.opt.Recent == nil {
		h.adminError(ctx, fasthttp.StatusConflict, "no recent traffic is kept (-recent-size 0): nothing to replay", "")
		return
	}
	if !h.wi.replayMu.TryLock() {
		h.adminError(ctx, fasthttp.StatusTooManyRequests, "a what-if replay is already running; try again when it is done", "")
		return
	}
	defer h.wi.replayMu.Unlock()
	p, err := h.svc.Propose(req.Edits)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	rp, err := whatif.New(h.m, whatif.Side{Snap: p.BaseSnap, Set: p.Base}, &whatif.Side{Snap: p.NextSnap, Set: p.Next},
		whatif.Options{Examples: req.Examples})
	if err != nil {
		h.fail(ctx, &service.InvalidError{Err: err})
		return
	}
	rep := rp.Ring(h.opt.Recent, h.now())
	h.writeJSON(ctx, fasthttp.StatusOK, whatIfJSON{RingSize: h.opt.Recent.Size(), RingMaxAge: h.opt.Recent.MaxAge().String(), Report: rep})
}

// shadowJSON describes the shadow policy.
type shadowJSON struct {
	Installed     time.Time            `json:"installed"`
	By            string               `json:"by"`
	Edits         []service.Edit       `json:"edits"`
	Decisions     uint64               `json:"decisions"`
	Disagreements uint64               `json:"disagreements"`
	Turned        map[string]uint64    `json:"turned"`
	ByReason      []whatif.ShadowCount `json:"by_reason_country"`
	Promoted      bool                 `json:"promoted,omitempty"`
}

func describeShadow(sh *whatif.Shadow) shadowJSON {
	st := sh.Stats()
	out := shadowJSON{Installed: sh.Installed, By: sh.By, Edits: sh.Edits.([]service.Edit), Decisions: st.Decisions.Load(),
		Disagreements: st.Disagreements.Load(), Turned: map[string]uint64{}, ByReason: st.ByReasonCountry()}
	for _, l := range []matcher.Action{matcher.Allow, matcher.Reject, matcher.Screen} {
		for _, s := range []matcher.Action{matcher.Allow, matcher.Reject, matcher.Screen} {
			if n := st.Turned(l, s); n > 0 {
				out.Turned[l.String()+"->"+s.String()] = n
			}
		}
	}
	if out.ByReason == nil {
		out.ByReason = []whatif.ShadowCount{}
	}
	return out
}

func (h *Handler) shadowRoute(ctx *fasthttp.RequestCtx, who service.Actor, method string) {
	switch method {
	case "GET":
		sh := h.shadow.Load()
		if sh == nil {
			h.adminError(ctx, fasthttp.StatusNotFound, "no shadow policy installed", "")
			return
		}
		h.writeJSON(ctx, fasthttp.StatusOK, describeShadow(sh))
	case "PUT":
		req, ok := h.decodeChange(ctx)
		if !ok {
			return
		}
		h.wi.shadowMu.Lock()
		defer h.wi.shadowMu.Unlock()
		p, err := h.svc.Propose(req.Edits)
		if err != nil {
			h.fail(ctx, err)
			return
		}
		sh := whatif.NewShadow(p.NextSnap, p.BaseSnap, h.log, who.Name, req.Edits)
		h.shadow.Store(sh)
		h.log.Info().Str("who", who.Name).Str("remote", who.Remote).Int("edits", len(req.Edits)).Msg("shadow policy installed")
		h.writeJSON(ctx, fasthttp.StatusOK, describeShadow(sh))
	case "DELETE":
		h.wi.shadowMu.Lock()
		defer h.wi.shadowMu.Unlock()
		sh := h.shadow.Swap(nil)
		if sh == nil {
			h.adminError(ctx, fasthttp.StatusNotFound, "no shadow policy installed", "")
			return
		}
		h.log.Info().Str("who", who.Name).Str("remote", who.Remote).Msg("shadow policy dropped")
		h.writeJSON(ctx, fasthttp.StatusOK, describeShadow(sh))
	}
}

// promoteShadow puts the shadow's change in force through the service's
// write path (one audit entry, "shadow.promote") and drops the shadow.
func (h *Handler) promoteShadow(ctx *fasthttp.RequestCtx, who service.Actor) {
	h.wi.shadowMu.Lock()
	defer h.wi.shadowMu.Unlock()
	sh := h.shadow.Load()
	if sh == nil {
		h.adminError(ctx, fasthttp.StatusNotFound, "no shadow policy installed", "")
		return
	}
	if err := h.svc.ApplyEdits(who, "shadow.promote", sh.Edits.([]service.Edit)); err != nil {
		h.fail(ctx, fmt.Errorf("promoting the shadow policy (it stays installed): %w", err))
		return
	}
	h.shadow.Store(nil)
	out := describeShadow(sh)
	out.Promoted = true
	h.writeJSON(ctx, fasthttp.StatusOK, out)
}

// writeWhatIfMetrics appends the ring's and the shadow's lines to /metrics.
func (h *Handler) writeWhatIfMetrics(b *bytes.Buffer) {
	r := h.opt.Recent
	held := min(r.Written(), uint64(r.Size()))
	b.WriteString("# HELP tollgate_recent_queries Check queries held in the recent-traffic ring (at most -recent-size; older than -recent-max-age are ignored by replays).\n# TYPE tollgate_recent_queries gauge\n")
	fmt.Fprintf(b, "tollgate_recent_queries %d\n", held)
	b.WriteString("# HELP tollgate_recent_written_total Check queries ever written to the recent-traffic ring.\n# TYPE tollgate_recent_written_total counter\n")
	fmt.Fprintf(b, "tollgate_recent_written_total %d\n", r.Written())
	sh := h.shadow.Load()
	var st *whatif.ShadowStats
	if sh != nil {
		st = sh.Stats()
	}
	whatif.WriteMetrics(b, st, sh != nil)
}
