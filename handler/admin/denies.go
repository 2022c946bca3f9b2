package admin

import (
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/service"
	"github.com/valyala/fasthttp"
)

// recommendedDenies serves GET /v1/recommended-denies: the shipped set of
// whole countries guidance names for IRSF, as JSON with which the operator
// has disabled, or as the shipped CSV file with ?format=csv.
func (h *API) recommendedDenies(ctx *fasthttp.RequestCtx) {
	switch f := string(ctx.QueryArgs().Peek("format")); f {
	case "csv":
		ctx.SetContentTypeBytes(ctCSV)
		ctx.SetBody(matcher.DefaultRecommendedDeniesCSV())
		return
	case "", "json":
	default:
		h.adminError(ctx, fasthttp.StatusBadRequest, "format "+f+" is not json or csv", "format")
		return
	}
	d, err := h.svc.RecommendedDenies()
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, d)
}

// operatorRecommendedDenies serves PUT (apply: disable every country of the
// set) and DELETE (enable again the countries the set disabled) on
// /v1/operator/recommended-denies.
func (h *API) operatorRecommendedDenies(ctx *fasthttp.RequestCtx, who service.Actor, method string) {
	var (
		ch  service.RecommendedDeniesChange
		err error
	)
	if method == "PUT" {
		ch, err = h.svc.ApplyRecommendedDenies(who)
	} else {
		ch, err = h.svc.RemoveRecommendedDenies(who)
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, ch)
}
