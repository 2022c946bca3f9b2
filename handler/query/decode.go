package query

import (
	"strconv"
	"sync"
	"unsafe"

	"github.com/tollgate/tollgate/matcher"
	"github.com/valyala/fasthttp"
)

// The query fields, in the order of the wire contract. Index into fieldNames
// and fieldsOf.
const (
	fTo = iota
	fAccount
	fSubaccount
	fFrom
	fSrcIP
	fCallID
	numFields
)

var fieldNames = [numFields]string{"to", "account", "subaccount", "from", "src_ip", "call_id"}

// MaxFieldLen bounds every query field: longer than any SIP user part,
// account tag or Call-ID a proxy sends, short enough that a request cannot
// make the log line or the response large.
const MaxFieldLen = 256

// maxDepth bounds the nesting of JSON values the decoders skip over, so a
// hostile "[[[[…" cannot recurse the stack away.
const maxDepth = 32

// b2s views b as a string without copying. The string is valid as long as
// b's memory is: request strings die with the handler call, which is why the
// matcher must not keep them (it doesn't) and the verdict is encoded before
// the handler returns.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func fieldPtr(q *matcher.Query, i int) *string {
	switch i {
	case fTo:
		return &q.To
	case fAccount:
		return &q.Account
	case fSubaccount:
		return &q.Subaccount
	case fFrom:
		return &q.From
	case fSrcIP:
		return &q.SrcIP
	default:
		return &q.CallID
	}
}

// errKind enumerates what can be wrong with a request. Decoders return a
// decodeError value (no allocation) and the transports render it.
type errKind uint8

const (
	errNone errKind = iota
	errMissingTo
	errTooLong      // field
	errFieldType    // field: not a string, number or null
	errSyntax       // off: not JSON
	errNotObject    // the body is JSON but not an object
	errBodyTooLarge // off: the limit
	errTooDeep
	errEmpty
	errSrcIP     // off: the origin.SourceError
	errDuplicate // field: given more than once
	errBadName   // field: account or subaccount outside policy.ValidName
	errFormat    // format: not "json" or "compact", or given twice
)

// verdictFormat is how a check is answered: the verdict object (the
// default) or the compact line (format=compact, AppendVerdictCompact).
type verdictFormat uint8

const (
	formatJSON verdictFormat = iota
	formatCompact
)

// formatName is the request field that picks the verdict's format.
const formatName = "format"

// parseFormat reads a format value: "json" or "compact".
func parseFormat(v []byte) (verdictFormat, bool) {
	switch string(v) {
	case "json":
		return formatJSON, true
	case "compact":
		return formatCompact, true
	}
	return formatJSON, false
}

// decodeError says what made a request malformed, without allocating.
type decodeError struct {
	kind  errKind
	field int8
	off   int32
}

func (e decodeError) ok() bool { return e.kind == errNone }

// appendMsg appends the human message. Field names are plain ASCII, so the
// message is valid JSON string content once quotes are escaped; it is
// written with \" already.
func (e decodeError) appendMsg(dst []byte) []byte {
	switch e.kind {
	case errMissingTo:
		return append(dst, `missing required field \"to\"`...)
	case errTooLong:
		dst = append(dst, `field \"`...)
		dst = append(dst, fieldNames[e.field]...)
		dst = append(dst, `\" is longer than `...)
		dst = strconv.AppendInt(dst, MaxFieldLen, 10)
		return append(dst, ` bytes`...)
	case errFieldType:
		dst = append(dst, `field \"`...)
		dst = append(dst, fieldNames[e.field]...)
		return append(dst, `\" must be a string`...)
	case errSyntax:
		dst = append(dst, `malformed JSON at byte `...)
		return strconv.AppendInt(dst, int64(e.off), 10)
	case errNotObject:
		return append(dst, `the body must be a JSON object`...)
	case errBodyTooLarge:
		dst = append(dst, `request body larger than `...)
		dst = strconv.AppendInt(dst, int64(e.off), 10)
		return append(dst, ` bytes`...)
	case errTooDeep:
		return append(dst, `JSON nested too deeply`...)
	case errEmpty:
		return append(dst, `empty request body`...)
	case errSrcIP:
		return appendSrcIPMsg(dst, e)
	case errDuplicate:
		dst = append(dst, `field \"`...)
		dst = append(dst, fieldNames[e.field]...)
		return append(dst, `\" given more than once`...)
	case errBadName:
		dst = append(dst, `field \"`...)
		dst = append(dst, fieldNames[e.field]...)
		return append(dst, `\" is not a name an account can have (1-64 letters, digits and ._-@+: but not . or ..; in a query string send + as %2B)`...)
	case errFormat:
		return append(dst, `field \"format\" must be given once, as \"json\" or \"compact\"`...)
	}
	return append(dst, `malformed request`...)
}

// decodeArgs fills q from a query string. Values are fasthttp's decoded
// bytes, valid for the handler call. Unknown parameters are ignored so that
// a proxy config may carry extra ones; a known one given twice is refused
// (which of two "to" a proxy meant is not tollgate's guess, and GET and
// JSON once guessed differently). `format` (json or compact) goes to f. A
// `to` starting with a space was a '+'
// the config forgot to encode (form decoding turns '+' into a space, and no
// number starts with a blank), so it is read as the '+' it was.
func decodeArgs(a *fasthttp.Args, q *matcher.Query, f *verdictFormat) decodeError {
	c := pairs{q: q, f: f}
	for k, v := range a.All() {
		// v is fasthttp's own buffer for this request: take may write it
		if _, e := c.take(k, v); !e.ok() {
			return e
		}
	}
	return c.done()
}

// pairs files a check's name=value pairs into a query for decodeArgs and
// decodeQuery, so that both refuse the same things in the same order.
type pairs struct {
	q       *matcher.Query
	f       *verdictFormat
	seen    uint8 // the fields given, by index
	fmtSeen bool
}

// take files one pair: false for a name that is not a query field (format,
// or one a check does not know, which is ignored). v must be writable and
// outlive the check: it is kept, and a "to" starting with a space has it
// turned into the '+' it was.
func (c *pairs) take(k, v []byte) (bool, decodeError) {
	i := fieldIndex(k)
	if i < 0 {
		if string(k) == formatName {
			var ok bool
			if *c.f, ok = parseFormat(v); !ok || c.fmtSeen {
				return false, decodeError{kind: errFormat}
			}
			c.fmtSeen = true
		}
		return false, decodeError{}
	}
	if c.seen&(1<<i) != 0 {
		return false, decodeError{kind: errDuplicate, field: int8(i)}
	}
	c.seen |= 1 << i
	if len(v) > MaxFieldLen {
		return false, decodeError{kind: errTooLong, field: int8(i)}
	}
	if i == fTo && len(v) > 0 && v[0] == ' ' {
		v[0] = '+'
	}
	*fieldPtr(c.q, i) = b2s(v)
	return true, decodeError{}
}

// done checks what the pairs give together: a "to", names an account can
// have, a source address if one was given.
func (c *pairs) done() decodeError {
	if c.q.To == "" {
		return decodeError{kind: errMissingTo}
	}
	if e := checkNames(c.q.Account, c.q.Subaccount); !e.ok() {
		return e
	}
	if c.seen&(1<<fSrcIP) != 0 {
		return checkSrcIP(c.q.SrcIP)
	}
	return decodeError{}
}

// fieldIndex is the query field named key, -1 for any other name.
func fieldIndex(key []byte) int {
	for i := range fieldNames {
		if string(key) == fieldNames[i] {
			return i
		}
	}
	return -1
}

// scanner is a minimal JSON reader over one buffer: enough to find the six
// string fields of a check object and skip anything else, without building
// values.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) syntax() decodeError { return decodeError{kind: errSyntax, off: int32(s.i)} }

// str reads a string at s.i (on the opening quote) and returns its raw
// content span and whether it holds escapes.
func (s *scanner) str() (start, end int, esc bool, e decodeError) {
	s.i++ // opening quote
	start = s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			end = s.i
			s.i++
			return start, end, esc, decodeError{}
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				s.i = len(s.b)
				return 0, 0, false, s.syntax()
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					s.i = len(s.b)
					return 0, 0, false, s.syntax()
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if _, ok := unhex(h); !ok {
						return 0, 0, false, s.syntax()
					}
				}
				s.i += 6
			default:
				return 0, 0, false, s.syntax()
			}
		case c < 0x20:
			return 0, 0, false, s.syntax()
		default:
			s.i++
		}
	}
	return 0, 0, false, s.syntax()
}

func unhex(c byte) (rune, bool) {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0'), true
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10), true
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10), true
	}
	return 0, false
}

// number reads a JSON number at s.i.
func (s *scanner) number() decodeError {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		s.i = i
		return s.syntax()
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return s.syntax()
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return s.syntax()
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	s.i = i
	return decodeError{}
}

func (s *scanner) literal(lit string) decodeError {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.syntax()
	}
	s.i += len(lit)
	return decodeError{}
}

// value skips one JSON value at s.i (after whitespace).
func (s *scanner) value(depth int) decodeError {
	if depth > maxDepth {
		return decodeError{kind: errTooDeep, off: int32(s.i)}
	}
	if s.i >= len(s.b) {
		return s.syntax()
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, _, e := s.str()
		return e
	case c == '{':
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			return decodeError{}
		}
		for {
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != '"' {
				return s.syntax()
			}
			if _, _, _, e := s.str(); !e.ok() {
				return e
			}
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != ':' {
				return s.syntax()
			}
			s.i++
			s.ws()
			if e := s.value(depth + 1); !e.ok() {
				return e
			}
			s.ws()
			if s.i >= len(s.b) {
				return s.syntax()
			}
			if s.b[s.i] == '}' {
				s.i++
				return decodeError{}
			}
			if s.b[s.i] != ',' {
				return s.syntax()
			}
			s.i++
		}
	case c == '[':
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return decodeError{}
		}
		for {
			s.ws()
			if e := s.value(depth + 1); !e.ok() {
				return e
			}
			s.ws()
			if s.i >= len(s.b) {
				return s.syntax()
			}
			if s.b[s.i] == ']' {
				s.i++
				return decodeError{}
			}
			if s.b[s.i] != ',' {
				return s.syntax()
			}
			s.i++
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return s.syntax()
}

// unescape appends the decoded content of a validated JSON string. Invalid
// or lone surrogates become U+FFFD, as encoding/json does. The output is
// never longer than the input, which is what lets callers size a scratch
// buffer once per request.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if r >= 0xD800 && r < 0xDC00 && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if lo := hex4(raw[i+2 : i+6]); lo >= 0xDC00 && lo < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = 0xFFFD
			}
			dst = appendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		v, _ := unhex(c)
		r = r<<4 | v
	}
	return r
}

func appendRune(dst []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(dst, byte(r))
	case r < 0x800:
		return append(dst, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return append(dst, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// scratch holds the decoded form of escaped JSON strings. It is taken from a
// pool only when a request actually contains an escape, and sized once per
// object to the object's length (decoded text is never longer than its JSON
// form), so it never reallocates under strings already handed out.
type scratch struct {
	b      []byte
	pooled *[]byte
	// local says the request came from a local peer (loopback): the one
	// thing about its connection a JSON-RPC call event needs to know.
	local bool
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxRPCBody); return &b }}

// ensure makes room for an object of n bytes. Everything decoded from one
// object fits in n bytes, so once the capacity is there no later append
// reallocates.
func (s *scratch) ensure(n int) {
	if cap(s.b) >= n {
		return
	}
	if s.pooled == nil {
		s.pooled = scratchPool.Get().(*[]byte)
	}
	if cap(*s.pooled) < n {
		*s.pooled = make([]byte, 0, n)
	}
	s.b = (*s.pooled)[:0]
}

// release returns the pooled buffer; strings decoded into it die here.
func (s *scratch) release() {
	if s.pooled != nil {
		scratchPool.Put(s.pooled)
		s.pooled, s.b = nil, nil
	}
}

// decodeObject fills q from a JSON object holding the check fields. String
// values without escapes point into b; escaped ones are decoded into sc.
// Numbers are taken as their text (an account tag written as 1234); null
// leaves a field empty; unknown members are skipped; a field given twice
// (null included) is refused, as decodeArgs does. A "format" member (a
// string, "json" or "compact"; null is the default) goes to f.
func decodeObject(b []byte, q *matcher.Query, f *verdictFormat, sc *scratch) decodeError {
	sc.b = sc.b[:0]
	fmtSeen := false
	// a field (or format) of the wrong type or length is reported once
	// the whole object has been read: invalid JSON is a syntax error first
	var late decodeError
	srcAt := -1    // where the src_ip value starts, judged once the object parsed
	var seen uint8 // fields read so far: a field given twice is refused
	s := scanner{b: b}
	s.ws()
	if s.i >= len(b) {
		return decodeError{kind: errEmpty}
	}
	if b[s.i] != '{' {
		if e := s.value(0); !e.ok() {
			return e
		}
		return decodeError{kind: errNotObject}
	}
	s.i++
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
	} else {
		for {
			s.ws()
			if s.i >= len(b) || b[s.i] != '"' {
				return s.syntax()
			}
			ks, ke, kesc, e := s.str()
			if !e.ok() {
				return e
			}
			key := b[ks:ke]
			if kesc {
				sc.ensure(len(b))
				n := len(sc.b)
				sc.b = unescape(sc.b, key)
				key = sc.b[n:]
				sc.b = sc.b[:n] // the key is only compared, before the next append
			}
			fi := fieldIndex(key)
			if fi >= 0 {
				if seen&(1<<fi) != 0 {
					return decodeError{kind: errDuplicate, field: int8(fi)}
				}
				seen |= 1 << fi
			}
			s.ws()
			if s.i >= len(b) || b[s.i] != ':' {
				return s.syntax()
			}
			s.i++
			s.ws()
			switch {
			case fi >= 0:
				if fi == fSrcIP {
					srcAt = s.i
				}
				if e := s.field(q, fi, sc); !e.ok() {
					if e.kind != errFieldType && e.kind != errTooLong {
						return e
					}
					if late.ok() {
						late = e
					}
				}
			case string(key) == formatName:
				if fmtSeen {
					return decodeError{kind: errFormat}
				}
				fmtSeen = true
				if e := s.format(f, sc); !e.ok() {
					if e.kind != errFormat {
						return e
					}
					if late.ok() {
						late = e
					}
				}
			default:
				if e := s.value(1); !e.ok() {
					return e
				}
			}
			s.ws()
			if s.i >= len(b) {
				return s.syntax()
			}
			if b[s.i] == '}' {
				s.i++
				break
			}
			if b[s.i] != ',' {
				return s.syntax()
			}
			s.i++
		}
	}
	s.ws()
	if s.i != len(b) {
		return s.syntax()
	}
	if !late.ok() {
		return late
	}
	if q.To == "" {
		return decodeError{kind: errMissingTo}
	}
	if e := checkNames(q.Account, q.Subaccount); !e.ok() {
		return e
	}
	if srcAt >= 0 && b[srcAt] != 'n' { // given (null is not): it must be an address
		if b[srcAt] != '"' {
			return decodeError{kind: errFieldType, field: fSrcIP} // no number is one
		}
		return checkSrcIP(q.SrcIP)
	}
	return decodeError{}
}

// format reads the value of the format member into f: "json",
// "compact" or null (the default); anything else is refused once it has
// been read as JSON (so that invalid JSON is still reported as such).
func (s *scanner) format(f *verdictFormat, sc *scratch) decodeError {
	if s.i < len(s.b) && s.b[s.i] == '"' {
		st, en, esc, e := s.str()
		if !e.ok() {
			return e
		}
		v := s.b[st:en]
		if esc {
			sc.ensure(len(s.b))
			n := len(sc.b)
			sc.b = unescape(sc.b, v)
			v = sc.b[n:]
			sc.b = sc.b[:n] // only compared
		}
		var ok bool
		if *f, ok = parseFormat(v); !ok {
			return decodeError{kind: errFormat}
		}
		return decodeError{}
	}
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return s.literal("null")
	}
	if e := s.value(1); !e.ok() {
		return e
	}
	return decodeError{kind: errFormat}
}

// field reads the value of check field f into q.
func (s *scanner) field(q *matcher.Query, f int, sc *scratch) decodeError {
	if s.i >= len(s.b) {
		return s.syntax()
	}
	var v []byte
	switch c := s.b[s.i]; {
	case c == '"':
		st, en, esc, e := s.str()
		if !e.ok() {
			return e
		}
		v = s.b[st:en]
		if esc {
			sc.ensure(len(s.b))
			n := len(sc.b)
			sc.b = unescape(sc.b, v)
			v = sc.b[n:]
		}
	case c == '-' || (c >= '0' && c <= '9'):
		st := s.i
		if e := s.number(); !e.ok() {
			return e
		}
		v = s.b[st:s.i]
	case c == 'n':
		if e := s.literal("null"); !e.ok() {
			return e
		}
	default:
		if e := s.value(1); !e.ok() {
			return e
		}
		return decodeError{kind: errFieldType, field: int8(f)}
	}
	if len(v) > MaxFieldLen {
		return decodeError{kind: errTooLong, field: int8(f)}
	}
	*fieldPtr(q, f) = b2s(v)
	return decodeError{}
}

// decodeQuery is decodeArgs over a raw query string, without building
// fasthttp.Args first (the epoll loop's GET checks; issue 17, fifth
// pass): the same split (on '&', then the first '='), the same form
// decoding (fasthttp's decodeArgAppend: %XX, '+' as a space, a '%' without
// two hex digits kept as it is), the same pairs skipped (empty name and
// value), the same checks in the same order, so the same query or the same
// error. q's fields point into query for values without '%' or '+', and
// into *buf (grown once to the query's length, then reused until the next
// call) for the decoded ones.
// FuzzDecodeQuery holds it to decodeArgs.
func decodeQuery(query []byte, buf *[]byte, q *matcher.Query, f *verdictFormat) decodeError {
	b := (*buf)[:0]
	if cap(b) < len(query) {
		b = make([]byte, 0, len(query)) // decoding never grows a value
		*buf = b
	}
	c := pairs{q: q, f: f}
	for s := query; len(s) > 0; {
		// one pass to the end of the pair: its first '=', and whether
		// the name or the value needs decoding
		eq, amp := -1, len(s)
		var encK, encV bool
	scan:
		for j := 0; j < len(s); j++ {
			switch queryClass[s[j]] {
			case qPlain:
			case qAmp:
				amp = j
				break scan
			case qEnc:
				if eq < 0 {
					encK = true
				} else {
					encV = true
				}
			case qEq:
				if eq < 0 {
					eq = j
				}
			}
		}
		key, val := s[:amp], []byte(nil)
		if eq >= 0 {
			key, val = s[:eq], s[eq+1:amp]
		}
		if amp < len(s) {
			s = s[amp+1:]
		} else {
			s = nil
		}
		// a value that needs no decoding is read where it is (the request
		// outlives the check), else decoded into b
		start := len(b)
		v := val
		if encV || len(val) > 0 && val[0] == ' ' {
			b = formDecode(b, val)
			v = b[start:len(b):len(b)]
		}
		k := key
		if encK {
			k = formDecode(b, key)[len(b):] // after the value, dropped below
		}
		if len(k) == 0 && len(v) == 0 {
			b = b[:start]
			continue
		}
		kept, e := c.take(k, v)
		if !e.ok() {
			return e
		}
		if !kept {
			b = b[:start]
		}
	}
	return c.done()
}

// The bytes decodeQuery's scan stops at.
const (
	qPlain = iota
	qAmp   // '&' ends a pair
	qEq    // the first '=' ends the name
	qEnc   // '%' or '+': decoded
)

var queryClass = func() (t [256]uint8) {
	t['&'], t['='], t['%'], t['+'] = qAmp, qEq, qEnc, qEnc
	return t
}()

// formDecode appends src form-decoded as fasthttp's decodeArgAppend does:
// the runs without '%' or '+' are copied whole.
func formDecode(dst, src []byte) []byte {
	for {
		i := 0
		for i < len(src) && src[i] != '%' && src[i] != '+' {
			i++
		}
		dst = append(dst, src[:i]...)
		if i == len(src) {
			return dst
		}
		if src[i] == '+' {
			dst = append(dst, ' ')
			src = src[i+1:]
			continue
		}
		if i+3 > len(src) {
			return append(dst, src[i:]...)
		}
		hi, ok1 := unhex(src[i+1])
		lo, ok2 := unhex(src[i+2])
		if !ok1 || !ok2 {
			dst = append(dst, '%')
			src = src[i+1:]
			continue
		}
		dst = append(dst, byte(hi<<4|lo))
		src = src[i+3:]
	}
}
