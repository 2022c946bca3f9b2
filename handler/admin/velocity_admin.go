package admin

import (
	"bytes"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
)

// reasonBody is the optional body of a lock or unlock: why.
type reasonBody struct {
	Reason string `json:"reason"`
}

// unlockBody is the optional body of an unlock: why, and until when (an
// RFC 3339 time, or "midnight": the account's next local midnight).
type unlockBody struct {
	Reason string `json:"reason"`
	Until  string `json:"until"`
}

// unlockedJSON answers an unlock: the lock lifted and, when the unlock
// lapses, when.
type unlockedJSON struct {
	Deleted velocity.Lock `json:"deleted"`
	Until   time.Time     `json:"until,omitzero"`
}

func readReason(ctx *fasthttp.RequestCtx) (string, error) {
	var body reasonBody
	if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
		if err := decodeBody(ctx.PostBody(), &body); err != nil {
			return "", err
		}
	}
	return body.Reason, nil
}

// velocityState serves GET (counters) and DELETE (reset) of
// /v1/accounts/{a}/velocity and /v1/accounts/{a}/subaccounts/{s}/velocity.
func (h *API) velocityState(ctx *fasthttp.RequestCtx, who service.Actor, method, account, sub string) {
	if method == "DELETE" {
		if err := h.svc.ResetVelocity(who, account, sub); err != nil {
			h.fail(ctx, err)
			return
		}
	}
	st, err := h.svc.VelocityState(account)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	var out any = st
	if sub != "" {
		found := false
		for _, s := range st.Subaccounts {
			if s.Subaccount == sub {
				out, found = s, true
			}
		}
		if !found {
			h.fail(ctx, &service.NotFoundError{What: "subaccount " + strconv.Quote(sub) + " of account " + strconv.Quote(account)})
			return
		}
	}
	if method == "DELETE" {
		out = struct {
			Reset    bool `json:"reset"`
			Velocity any  `json:"velocity"`
		}{true, out}
	}
	h.writeJSON(ctx, fasthttp.StatusOK, out)
}

// lockJSON is a scope's lock state on the wire.
type lockJSON struct {
	Account    string         `json:"account"`
	Subaccount string         `json:"subaccount,omitempty"`
	Locked     bool           `json:"locked"`
	Lock       *velocity.Lock `json:"lock"`
}

// lock serves GET, PUT (lock) and DELETE (unlock) of
// /v1/accounts/{a}/lock and /v1/accounts/{a}/subaccounts/{s}/lock.
func (h *API) lock(ctx *fasthttp.RequestCtx, who service.Actor, method, account, sub string) {
	switch method {
	case "GET":
		if h.svc.Velocity() == nil {
			h.fail(ctx, &service.ConflictError{Msg: "velocity counters are not enabled in this process"})
			return
		}
		var err error
		if sub == "" {
			_, err = h.svc.Account(account)
		} else {
			_, err = h.svc.Subaccount(account, sub)
		}
		if err != nil {
			h.fail(ctx, err)
			return
		}
		out := lockJSON{Account: account, Subaccount: sub}
		if l, ok := h.svc.Velocity().LockOf(account, sub); ok {
			out.Locked, out.Lock = true, &l
		}
		h.writeJSON(ctx, fasthttp.StatusOK, out)
	case "PUT":
		reason, err := readReason(ctx)
		if err != nil {
			h.fail(ctx, err)
			return
		}
		l, err := h.svc.Lock(who, account, sub, reason)
		if err != nil {
			h.fail(ctx, err)
			return
		}
		h.writeJSON(ctx, fasthttp.StatusOK, lockJSON{Account: account, Subaccount: sub, Locked: true, Lock: &l})
	case "DELETE":
		var body unlockBody
		if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
			if err := decodeBody(ctx.PostBody(), &body); err != nil {
				h.fail(ctx, err)
				return
			}
		}
		l, until, err := h.svc.UnlockUntil(who, account, sub, body.Reason, body.Until)
		if err != nil {
			h.fail(ctx, err)
			return
		}
		h.writeJSON(ctx, fasthttp.StatusOK, unlockedJSON{Deleted: l, Until: until.UTC()})
	}
}

func (h *API) locks(ctx *fasthttp.RequestCtx) {
	ls, err := h.svc.Locks()
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, struct {
		Locks []velocity.Lock `json:"locks"`
	}{ls})
}

// rateDeck serves GET (CSV), PUT (CSV upload) and DELETE of /v1/rate-deck.
func (h *API) rateDeck(ctx *fasthttp.RequestCtx, who service.Actor, method string) {
	var (
		info service.RateDeckInfo
		err  error
	)
	switch method {
	case "GET":
		d, info, err := h.svc.RateDeck()
		if err != nil {
			h.fail(ctx, err)
			return
		}
		b, err := service.WriteRateDeck(d)
		if err != nil {
			h.fail(ctx, err)
			return
		}
		hdr := &ctx.Response.Header
		hdr.Set("X-Tollgate-Rate-Deck-Origin", info.Origin)
		hdr.Set("X-Tollgate-Rate-Deck-Version", info.Version)
		hdr.Set("X-Tollgate-Rate-Deck-Entries", strconv.Itoa(info.Entries))
		hdr.Set("X-Tollgate-Rate-Deck-Currency", info.Currency)
		ctx.SetContentTypeBytes(ctCSV)
		ctx.SetBody(b)
		return
	case "PUT":
		body := ctx.PostBody()
		var d policy.RateDeck
		if d, err = policy.ParseRateDeck(bytes.NewReader(body)); err == nil {
			info, err = h.svc.PutRateDeck(who, d, body)
		}
	case "DELETE":
		info, err = h.svc.DeleteRateDeck(who)
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, struct {
		RateDeck service.RateDeckInfo `json:"rate_deck"`
	}{info})
}

// recentAlerts serves GET /v1/alerts[?limit=N]: the latest alerts, newest
// first. In fleet mode they are the fleet's, from its alert stream, or this
// node's marked degraded when the stream cannot be read (fleetAlerts).
func (h *API) recentAlerts(ctx *fasthttp.RequestCtx) {
	limit, err := intArg(ctx.QueryArgs(), "limit")
	if err != nil {
		h.fail(ctx, err)
		return
	}
	if h.opt.FleetState != nil {
		h.fleetAlerts(ctx, limit)
		return
	}
	if h.alerts == nil {
		h.fail(ctx, &service.ConflictError{Msg: "alerts are not enabled in this process"})
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, struct {
		Alerts any `json:"alerts"`
	}{h.alerts.Recent(limit)})
}

// calls serves GET /v1/accounts/{a}/calls: the account's live calls and
// the ended ones still remembered, unconfirmed ones flagged.
func (h *API) calls(ctx *fasthttp.RequestCtx, account string) {
	cs, err := h.svc.Calls(account)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, struct {
		Calls []velocity.CallState `json:"calls"`
	}{cs})
}
