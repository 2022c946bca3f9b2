package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/tollgate/tollgate/policy"
)

// MaxJSONItems bounds the array elements and object members of one admin
// JSON document, all levels together: more than the largest account
// (policy.MaxAccountPrefixes prefixes) with room for its other lists.
const MaxJSONItems = 250_000

// jsonListLimit is how many entries one array or object of an admin
// document may have: the subaccounts of an account are bounded by
// policy.MaxSubaccounts, every other list by policy.MaxPrefixes (the
// largest list a policy has).
func jsonListLimit(field string) int {
	if field == "subaccounts" {
		return policy.MaxSubaccounts
	}
	return policy.MaxPrefixes
}

// checkJSONSize walks body token by token and refuses it as soon as one
// list passes its limit or the whole document passes MaxJSONItems, before
// anything is decoded into Go values: a 50 MB list is refused at its
// 10,001st entry instead of after building all of it. Syntax errors are
// left to the decoder that follows, which names them better.
func checkJSONSize(body []byte) error {
	type frame struct {
		field   string
		obj     bool
		wantKey bool
		key     string
		n       int
		limit   int
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []frame
	total := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return nil
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil {
			counted := !top.obj // an array element
			switch {
			case top.obj && top.wantKey: // a member's key
				top.key, _ = tok.(string)
				top.wantKey, counted = false, true
			case top.obj: // a member's value; a key comes next
				top.wantKey = true
			}
			if counted {
				top.n++
				total++
				if top.n > top.limit {
					return &policy.FieldError{Field: top.field, Msg: fmt.Sprintf("more than %d entries", top.limit)}
				}
				if total > MaxJSONItems {
					return &policy.FieldError{Field: "body", Msg: fmt.Sprintf("more than %d list entries in all", MaxJSONItems)}
				}
			}
		}
		if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
			field := "body"
			if top != nil {
				switch {
				case top.obj && top.field == "body":
					field = top.key
				case top.obj:
					field = top.field + "." + top.key
				default:
					field = top.field + "[" + strconv.Itoa(top.n-1) + "]"
				}
			}
			stack = append(stack, frame{field: field, obj: d == '{', wantKey: d == '{', limit: jsonListLimit(field)})
		}
	}
}
