package admin

import (
	"bytes"
	"mime"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/valyala/fasthttp"
)

// unsupportedMediaError refuses a JSON Patch (RFC 6902, a list of operations): the
// PATCH routes take a merge patch (RFC 7396), and reading one as the other
// would apply something the client did not mean.
type unsupportedMediaError struct{ ct string }

func (e *unsupportedMediaError) Error() string {
	return "Content-Type " + e.ct + " is not a JSON merge patch; send application/merge-patch+json (or application/json): an object of the fields to change, null to remove one"
}

// mergePatchBody returns the body of a PATCH after checking its size and
// that it is not a JSON Patch. Other media types are read as a merge patch,
// as PUT reads any as JSON: curl -d sends a form type.
func mergePatchBody(ctx *fasthttp.RequestCtx) ([]byte, error) {
	if ct := string(ctx.Request.Header.ContentType()); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json-patch+json" {
			return nil, &unsupportedMediaError{ct: ct}
		}
	}
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &policy.FieldError{Field: "body", Msg: "empty; a JSON merge patch object is required"}
	}
	if err := checkJSONSize(body); err != nil {
		return nil, err
	}
	return body, nil
}

// ifMatch is the request's If-Match header: "" when absent.
func ifMatch(ctx *fasthttp.RequestCtx) string {
	return string(bytes.TrimSpace(ctx.Request.Header.Peek(fasthttp.HeaderIfMatch)))
}

// setRevision sends the resource's revision as its ETag, for If-Match.
func setRevision(ctx *fasthttp.RequestCtx, v any) {
	if rev := service.Revision(v); rev != "" {
		ctx.Response.Header.Set(fasthttp.HeaderETag, rev)
	}
}
