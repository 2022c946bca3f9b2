package admin

import (
	"bytes"
	"errors"

	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/service"
	"github.com/valyala/fasthttp"
)

// originBody is the body of the origin endpoints: a screening result, a
// home country or an unblock code.
type originBody struct {
	Result  string `json:"result,omitempty"`
	Country string `json:"country,omitempty"`
	Code    string `json:"code,omitempty"`
}

func readOriginBody(ctx *fasthttp.RequestCtx) (originBody, error) {
	var b originBody
	if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
		if err := decodeBody(ctx.PostBody(), &b); err != nil {
			return b, err
		}
	}
	return b, nil
}

// originStateJSON is an account's (or subaccount's) origin state on the
// wire.
type originStateJSON struct {
	Account    string        `json:"account"`
	Subaccount string        `json:"subaccount,omitempty"`
	Origin     origin.Status `json:"origin"`
}

// origin serves the origin endpoints under /v1/accounts/{a}/ and
// /v1/accounts/{a}/subaccounts/{s}/: origin (GET), screening (POST, the
// IVR's report), quarantine (DELETE), home-origin (PUT, DELETE),
// unblock-code (PUT, DELETE) and unblock-code/verify (POST); what is the
// path's tail. A subaccount with origin settings of its own has its own
// state; for any other the subaccount paths reach its account's.
func (h *API) origin(ctx *fasthttp.RequestCtx, who service.Actor, method, what, account, sub string) {
	body, err := readOriginBody(ctx)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	var st origin.Status
	switch {
	case what == "origin":
		st, err = h.svc.OriginStatus(account, sub)
	case what == "screening":
		st, err = h.svc.ReportScreening(who, account, sub, body.Result)
	case what == "quarantine":
		st, err = h.svc.ReleaseQuarantine(who, account, sub)
	case what == "home-origin" && method == "PUT":
		st, err = h.svc.SetHomeOrigin(who, account, sub, body.Country)
	case what == "home-origin":
		st, err = h.svc.ClearHomeOrigin(who, account, sub)
	case what == "unblock-code" && method == "PUT":
		st, err = h.svc.SetUnblockCode(who, account, sub, body.Code)
	case what == "unblock-code":
		st, err = h.svc.ClearUnblockCode(who, account, sub)
	case what == "unblock-code/verify":
		st, err = h.svc.VerifyUnblockCode(who, account, sub, body.Code)
		h.writeVerify(ctx, account, sub, st, err)
		return
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, originStateJSON{Account: account, Subaccount: sub, Origin: st})
}

// writeVerify answers an unblock code verification so an IVR can branch on
// the status alone: 200 verified, 403 wrong code, 429 locked out, 404 no
// code set (or no such account).
func (h *API) writeVerify(ctx *fasthttp.RequestCtx, account, sub string, st origin.Status, err error) {
	out := struct {
		Account    string        `json:"account"`
		Subaccount string        `json:"subaccount,omitempty"`
		Verified   bool          `json:"verified"`
		Result     string        `json:"result"`
		Origin     origin.Status `json:"origin"`
	}{Account: account, Subaccount: sub, Verified: err == nil, Result: "verified", Origin: st}
	status := fasthttp.StatusOK
	switch {
	case err == nil:
	case errors.Is(err, origin.ErrWrongCode):
		status, out.Result = fasthttp.StatusForbidden, "wrong_code"
	case errors.Is(err, origin.ErrCodeLocked):
		status, out.Result = fasthttp.StatusTooManyRequests, "locked_out"
	case errors.Is(err, origin.ErrNoCode):
		status, out.Result = fasthttp.StatusNotFound, "no_code"
	default:
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, status, out)
}
