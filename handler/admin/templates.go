package admin

import (
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/valyala/fasthttp"
)

// templateJSON is a template on the wire: its name, how many accounts
// name it, and its settings.
type templateJSON struct {
	Name     string `json:"name"`
	Accounts int    `json:"accounts"`
	policy.Template
}

func toTemplateJSON(t service.NamedTemplate) templateJSON {
	return templateJSON{Name: t.Name, Accounts: t.Accounts, Template: t.Template}
}

// serveTemplate serves GET, PUT and DELETE /v1/templates/{name}.
func serveTemplate(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.template(ctx, r.who, r.method, r.param("name"))
}

func (h *API) template(ctx *fasthttp.RequestCtx, who service.Actor, method, name string) {
	var (
		t   service.NamedTemplate
		err error
	)
	switch method {
	case "GET":
		t, err = h.svc.Template(name)
	case "PUT":
		var body policy.Template
		if err = decodeBody(ctx.PostBody(), &body); err == nil {
			t, err = h.svc.PutTemplate(who, name, body)
		}
	case "DELETE":
		var old policy.Template
		if old, err = h.svc.DeleteTemplate(who, name); err == nil {
			h.writeJSON(ctx, fasthttp.StatusOK, deletedJSON{templateJSON{Name: name, Template: old}})
			return
		}
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, toTemplateJSON(t))
}

func (h *API) listTemplates(ctx *fasthttp.RequestCtx) {
	list, err := h.svc.Templates()
	if err != nil {
		h.fail(ctx, err)
		return
	}
	out := struct {
		Templates []templateJSON `json:"templates"`
		Total     int            `json:"total"`
	}{Templates: make([]templateJSON, len(list)), Total: len(list)}
	for i, t := range list {
		out.Templates[i] = toTemplateJSON(t)
	}
	h.writeJSON(ctx, fasthttp.StatusOK, out)
}

// serveTemplateAccounts serves GET /v1/templates/{name}/accounts: the
// names of the accounts on a template, paged like GET /v1/accounts, so the
// accounts a 409 on DELETE names can all be found.
func serveTemplateAccounts(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	args := ctx.QueryArgs()
	limit, err := intArg(args, "limit")
	if err != nil {
		h.fail(ctx, err)
		return
	}
	name := r.param("name")
	names, total, err := h.svc.TemplateAccounts(name, string(args.Peek("after")), limit)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	out := struct {
		Template string   `json:"template"`
		Accounts []string `json:"accounts"`
		Total    int      `json:"total"`
		Next     string   `json:"next,omitempty"`
	}{Template: name, Accounts: names, Total: total}
	if limit > 0 && len(names) == limit {
		out.Next = names[len(names)-1]
	}
	h.writeJSON(ctx, fasthttp.StatusOK, out)
}
