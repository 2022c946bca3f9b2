package admin

import (
	"encoding/json"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/valyala/fasthttp"
)

// bulkBody is the body of PATCH /v1/accounts: which accounts, the merge
// patch for each, and whether only to try it.
type bulkBody struct {
	Select service.Selection `json:"select"`
	Patch  json.RawMessage   `json:"patch"`
	DryRun bool              `json:"dry_run"`
}

// bulkPatch serves PATCH /v1/accounts: one merge patch applied to many
// accounts in one audited transaction (service.BulkPatch).
func (h *API) bulkPatch(ctx *fasthttp.RequestCtx, who service.Actor) {
	var b bulkBody
	if err := decodeBody(ctx.PostBody(), &b); err != nil {
		h.fail(ctx, err)
		return
	}
	if len(b.Patch) == 0 {
		h.fail(ctx, &policy.FieldError{Field: "patch", Msg: "missing; a JSON merge patch object is required"})
		return
	}
	res, err := h.svc.BulkPatch(who, b.Select, b.Patch, b.DryRun)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, res)
}
