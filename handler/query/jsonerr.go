package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/policy"
)

// JSONFieldError turns encoding/json's errors into FieldErrors.
func JSONFieldError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &policy.FieldError{Field: "body", Msg: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	case errors.As(err, &te):
		field := jsonPath(te.Field)
		if field == "" {
			field = "body"
		}
		return &policy.FieldError{Field: field, Msg: fmt.Sprintf("expected %s, got JSON %s", te.Type, te.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return &policy.FieldError{Field: "body", Msg: "truncated JSON"}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, _ := strconv.Unquote(f)
		return &policy.FieldError{Field: name, Msg: "unknown field"}
	}
	return &policy.FieldError{Field: "body", Msg: strings.TrimPrefix(msg, "json: ")}
}

// jsonPath drops the Go names of embedded structs ("Policy.max_cps") from
// encoding/json's field paths, leaving the path as the client wrote it.
func jsonPath(p string) string {
	parts := strings.Split(p, ".")
	out := parts[:0]
	for _, s := range parts {
		if s != "Policy" && s != "Account" {
			out = append(out, s)
		}
	}
	return strings.Join(out, ".")
}
