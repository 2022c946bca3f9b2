package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MergePatch applies a JSON merge patch (RFC 7396) to a JSON document and
// returns the result: an object in the patch merges into the document's
// object key by key, null removes a key, and anything else replaces the
// value. A PATCH changes what it names and keeps the rest, where a PUT
// replaces the whole document (and so drops what the client left out).
// The patch must be one JSON object without repeated keys; errors name the
// field at fault ("body" for the patch as a whole). Numbers are kept as
// written, so a large cap does not pass through a float64.
func MergePatch(doc, patch []byte) ([]byte, error) {
	p, err := decodePatchValue(patch)
	if err != nil {
		return nil, err
	}
	if _, ok := p.(map[string]any); !ok {
		return nil, &FieldError{Field: "body", Msg: "a merge patch is a JSON object (RFC 7396); to replace the whole document use PUT"}
	}
	var d any
	if len(bytes.TrimSpace(doc)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("merge patch: the stored document is not JSON: %w", err)
		}
	}
	out, err := json.Marshal(mergeValue(d, p))
	if err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return out, nil
}

// mergeValue is RFC 7396's MergePatch(Target, Patch).
func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

// decodePatchValue decodes one JSON value, refusing repeated object keys
// (which one wins is not defined) and trailing data.
func decodePatchValue(b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, &FieldError{Field: "body", Msg: "empty; a JSON merge patch object is required"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := patchValue(dec, "", 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &FieldError{Field: "body", Msg: "data after the JSON object"}
	}
	return v, nil
}

func patchValue(dec *json.Decoder, path string, depth int) (any, error) {
	field := path
	if field == "" {
		field = "body"
	}
	if depth > strictMaxDepth {
		return nil, &FieldError{Field: field, Msg: fmt.Sprintf("nested deeper than %d levels", strictMaxDepth)}
	}
	tok, err := dec.Token()
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, &FieldError{Field: field, Msg: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
		}
		return nil, &FieldError{Field: field, Msg: "truncated or malformed JSON"}
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, &FieldError{Field: field, Msg: "malformed JSON object"}
				}
				k := kt.(string)
				kp := k
				if path != "" {
					kp = path + "." + k
				}
				if _, dup := m[k]; dup {
					return nil, &FieldError{Field: kp, Msg: "repeated key"}
				}
				v, err := patchValue(dec, kp, depth+1)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, &FieldError{Field: field, Msg: "malformed JSON object"}
			}
			return m, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := patchValue(dec, fmt.Sprintf("%s[%d]", path, len(a)), depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, &FieldError{Field: field, Msg: "malformed JSON array"}
			}
			return a, nil
		}
		return nil, &FieldError{Field: field, Msg: "malformed JSON"}
	default:
		return t, nil
	}
}
