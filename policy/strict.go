package policy

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// DecodeStrict decodes one JSON document into v (a pointer) and refuses
// what encoding/json lets through: a key given twice in one object (at any
// depth: the last one would silently win, even for "countries"), a key that
// matches a field only case-insensitively ("Max_Channels"), an unknown key,
// a value of the wrong JSON type, and anything after the document. Every
// refusal is a *FieldError naming the path of the offending key
// ("subaccounts.sales.countries", "countries.except[2]"); a problem with the
// document as a whole has an empty Field. Policy documents are decoded with
// it everywhere — the admin API, `tollgate import` and the data file — so a
// document means one thing wherever it is read.
func DecodeStrict(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("DecodeStrict: v must be a non-nil pointer")
	}
	var segs [8]pathSeg
	sc := strictScanner{b: data, segs: segs[:0]}
	sc.ws()
	if sc.i >= len(sc.b) {
		return &FieldError{Msg: "empty document; a JSON value is required"}
	}
	if err := sc.value(schemaOf(rv.Type().Elem()), 0); err != nil {
		return err
	}
	sc.ws()
	if sc.i != len(sc.b) {
		what := "value"
		if data[firstNonSpace(data)] == '{' {
			what = "object"
		}
		return &FieldError{Msg: fmt.Sprintf("unexpected data after the JSON %s at byte %d", what, sc.i)}
	}
	// The document is well-formed and every key is exactly a field's name:
	// encoding/json now decodes it as written.
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &FieldError{Field: embeddedPath(te.Field), Msg: fmt.Sprintf("expected %s, got JSON %s", te.Type, te.Value)}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &FieldError{Msg: "truncated JSON"}
		}
		return &FieldError{Msg: strings.TrimPrefix(err.Error(), "json: ")}
	}
	return nil
}

// strictMaxDepth bounds nesting: no policy document comes near it, and it
// keeps a hostile "[[[[…" from recursing the stack away.
const strictMaxDepth = 64

// schema is what a Go type accepts as JSON, as far as the strict checks
// need it.
type schema struct {
	kind   schemaKind
	fields map[string]*schema // object: exact JSON names
	lower  map[string]string  // object: lower-case name -> exact name, for the hint
	elem   *schema            // map values, array elements
	goType string             // for messages, as encoding/json names it
}

type schemaKind uint8

const (
	kAny    schemaKind = iota // anything well-formed (custom unmarshalers, interfaces)
	kObject                   // a struct: known keys only
	kMap                      // any keys, each once
	kArray
	kString
	kNumber
	kBool
)

var (
	schemaCache     sync.Map // reflect.Type -> *schema
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func schemaOf(t reflect.Type) *schema {
	if s, ok := schemaCache.Load(t); ok {
		return s.(*schema)
	}
	s := buildSchema(t, map[reflect.Type]*schema{})
	schemaCache.Store(t, s)
	return s
}

func buildSchema(t reflect.Type, seen map[reflect.Type]*schema) *schema {
	if s, ok := seen[t]; ok {
		return s
	}
	if t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return &schema{kind: kAny}
	}
	if t.Kind() != reflect.String && (t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		return &schema{kind: kString}
	}
	s := &schema{goType: t.String()}
	seen[t] = s
	switch t.Kind() {
	case reflect.Pointer:
		*s = *buildSchema(t.Elem(), seen)
	case reflect.Struct:
		s.kind, s.fields, s.lower = kObject, map[string]*schema{}, map[string]string{}
		addFields(s, t, seen)
	case reflect.Map:
		s.kind, s.elem = kMap, buildSchema(t.Elem(), seen)
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			s.kind = kString // base64 ([N]byte arrays are JSON arrays)
			break
		}
		s.kind, s.elem = kArray, buildSchema(t.Elem(), seen)
	case reflect.String:
		s.kind = kString
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		s.kind = kNumber
	case reflect.Bool:
		s.kind = kBool
	default:
		s.kind = kAny
	}
	return s
}

// addFields adds t's JSON fields to s the way encoding/json sees them:
// tagged names, untagged exported names, embedded structs promoted.
func addFields(s *schema, t reflect.Type, seen map[reflect.Type]*schema) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				addFields(s, et, seen)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := s.fields[name]; dup {
			continue // the outer field wins, as in encoding/json
		}
		s.fields[name] = buildSchema(ft, seen)
		s.lower[strings.ToLower(name)] = name
	}
}

type strictScanner struct {
	b []byte
	i int
	// segs is the path of the value being scanned, turned into a string
	// only for an error: a document that passes allocates no path.
	segs []pathSeg
}

// pathSeg is one step of a field path: an object key (raw, a slice of the
// input, unless it had escapes) or an array index.
type pathSeg struct {
	key   []byte
	idx   int
	isIdx bool
}

// path renders the current field path the way FieldErrors name fields:
// keys joined by dots (quoted when they would not read unambiguously),
// indexes in brackets.
func (s *strictScanner) path() string {
	var b strings.Builder
	for _, g := range s.segs {
		if g.isIdx {
			fmt.Fprintf(&b, "[%d]", g.idx)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		k := string(g.key)
		if k == "" || strings.ContainsAny(k, ".[]\"\\ ") || !isPrintable(k) {
			k = strconv.Quote(k)
		}
		b.WriteString(k)
	}
	return b.String()
}

func (s *strictScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *strictScanner) syntax(what string) error {
	if s.i >= len(s.b) {
		return &FieldError{Field: s.path(), Msg: "truncated JSON"}
	}
	return &FieldError{Field: s.path(), Msg: fmt.Sprintf("malformed JSON at byte %d: %s", s.i, what)}
}

// kindName says what a JSON value at s.i is, for type errors, in
// encoding/json's words.
func (s *strictScanner) kindName() string {
	switch c := s.b[s.i]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	}
	return "number"
}

// value checks one value at s.i against sc.
func (s *strictScanner) value(sc *schema, depth int) error {
	if depth > strictMaxDepth {
		return &FieldError{Field: s.path(), Msg: fmt.Sprintf("nested deeper than %d levels", strictMaxDepth)}
	}
	if s.i >= len(s.b) {
		return s.syntax("a value is missing")
	}
	c := s.b[s.i]
	if sc.kind != kAny && c != 'n' {
		var ok bool
		switch sc.kind {
		case kObject, kMap:
			ok = c == '{'
		case kArray:
			ok = c == '['
		case kString:
			ok = c == '"'
		case kNumber:
			ok = c == '-' || (c >= '0' && c <= '9')
		case kBool:
			ok = c == 't' || c == 'f'
		}
		if !ok && (c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9')) {
			return &FieldError{Field: s.path(), Msg: fmt.Sprintf("expected %s, got JSON %s", sc.goType, s.kindName())}
		}
	}
	switch {
	case c == '{':
		return s.object(sc, depth)
	case c == '[':
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return nil
		}
		elem := anySchema
		if sc.kind == kArray {
			elem = sc.elem
		}
		for n := 0; ; n++ {
			s.ws()
			s.segs = append(s.segs, pathSeg{idx: n, isIdx: true})
			if err := s.value(elem, depth+1); err != nil {
				return err
			}
			s.segs = s.segs[:len(s.segs)-1]
			s.ws()
			if s.i >= len(s.b) {
				return s.syntax("unterminated array")
			}
			if s.b[s.i] == ']' {
				s.i++
				return nil
			}
			if s.b[s.i] != ',' {
				return s.syntax("expected , or ] in an array")
			}
			s.i++
		}
	case c == '"':
		_, _, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return s.syntax(fmt.Sprintf("unexpected %s", quoteByteAt(s.b, s.i)))
}

var anySchema = &schema{kind: kAny}

func (s *strictScanner) object(sc *schema, depth int) error {
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	// The keys seen so far: a policy object has a dozen at most, so a
	// linear search of the first ones beats a map; the rest go to one.
	var (
		few  [16][]byte
		nfew int
		many map[string]bool
	)
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.syntax("expected a quoted key")
		}
		key, _, err := s.str()
		if err != nil {
			return err
		}
		s.segs = append(s.segs, pathSeg{key: key})
		dup := false
		for _, k := range few[:nfew] {
			if bytes.Equal(k, key) {
				dup = true
				break
			}
		}
		switch {
		case dup || many[string(key)]:
			return &FieldError{Field: s.path(), Msg: "given twice in one object (each key at most once)"}
		case nfew < len(few):
			few[nfew] = key
			nfew++
		default:
			if many == nil {
				many = map[string]bool{}
			}
			many[string(key)] = true
		}
		var sub *schema
		switch sc.kind {
		case kObject:
			sub = sc.fields[string(key)]
			if sub == nil {
				if exact, ok := sc.lower[strings.ToLower(string(key))]; ok {
					return &FieldError{Field: s.path(), Msg: fmt.Sprintf("unknown field (keys are case-sensitive: did you mean %q?)", exact)}
				}
				return &FieldError{Field: s.path(), Msg: "unknown field"}
			}
		case kMap:
			sub = sc.elem
		default:
			sub = anySchema
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.syntax("expected : after a key")
		}
		s.i++
		s.ws()
		if err := s.value(sub, depth+1); err != nil {
			return err
		}
		s.segs = s.segs[:len(s.segs)-1]
		s.ws()
		if s.i >= len(s.b) {
			return s.syntax("unterminated object")
		}
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		if s.b[s.i] != ',' {
			return s.syntax("expected , or } in an object")
		}
		s.i++
	}
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// quoteByteAt shows the character at b[i] for a message: the whole UTF-8
// character when one starts there (so "é" reads as "é", not as its first
// byte), else the byte in \x form.
func quoteByteAt(b []byte, i int) string {
	r, size := utf8.DecodeRune(b[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte %#02x", b[i])
	}
	return strconv.QuoteRune(r)
}

// str reads a string at s.i and returns its decoded content: a slice of
// the input when it has no escapes (no allocation), else a new one.
func (s *strictScanner) str() (content []byte, escaped bool, err error) {
	s.i++ // opening quote
	start := s.i
	esc := false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			if !utf8.Valid(raw) {
				// encoding/json would turn each bad byte into U+FFFD,
				// making distinct keys equal: refuse instead.
				return nil, false, s.syntax("a string that is not valid UTF-8")
			}
			s.i++
			if !esc {
				return raw, false, nil
			}
			var out string
			if err := json.Unmarshal(s.b[start-1:s.i], &out); err != nil {
				return nil, false, s.syntax("bad escape in a string")
			}
			return []byte(out), true, nil
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				s.i = len(s.b)
				return nil, false, s.syntax("unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					s.i = len(s.b)
					return nil, false, s.syntax("unterminated string")
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, false, s.syntax("bad \\u escape")
					}
				}
				s.i += 6
			default:
				return nil, false, s.syntax("bad escape in a string")
			}
		case c < 0x20:
			return nil, false, s.syntax("control character in a string")
		default:
			s.i++
		}
	}
	return nil, false, s.syntax("unterminated string")
}

func (s *strictScanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.syntax("expected " + lit)
	}
	s.i += len(lit)
	return nil
}

func (s *strictScanner) number() error {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() bool {
		st := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > st
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		digits()
	default:
		s.i = i
		return s.syntax("bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			s.i = i
			return s.syntax("bad number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			s.i = i
			return s.syntax("bad number")
		}
	}
	s.i = i
	return nil
}

// embeddedPath drops the Go names of embedded structs ("Policy.max_cps")
// from encoding/json's field paths, leaving the path as the document has it.
func embeddedPath(p string) string {
	parts := strings.Split(p, ".")
	out := parts[:0]
	for _, s := range parts {
		if s != "Policy" && s != "Account" {
			out = append(out, s)
		}
	}
	return strings.Join(out, ".")
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return 0
}
