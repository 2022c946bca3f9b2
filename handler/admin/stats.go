package admin

import (
	"strings"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/stats"
	"github.com/valyala/fasthttp"
)

// statsReport serves GET /v1/stats?window=1h|24h: decisions by verdict and
// reason, and the most rejected countries, prefixes and accounts, from the
// in-memory buckets the query path feeds (lost at a restart).
func (h *API) statsReport(ctx *fasthttp.RequestCtx) {
	w := string(ctx.QueryArgs().Peek("window"))
	if w == "" {
		w = "1h"
	}
	rep, ok := h.stats.Report(w)
	if !ok {
		h.fail(ctx, &policy.FieldError{Field: "window", Msg: "\"" + w + "\" is not one of " + strings.Join(stats.Windows, ", ")})
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, rep)
}
