package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// The answers are small flat JSON objects; a tiny allocation-free scanner is
// enough to pull out the verdict and to tell a well-formed object from a
// truncated or garbled one, and it keeps the load generator cheap.

// scan results of skipValue.
const (
	scanIncomplete = -1 // input ended inside the value
	scanInvalid    = -2 // not JSON
)

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at b[i]
// (which must be '"').
func skipString(b []byte, i int) int {
	start := i + 1
	for i = start; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return scanIncomplete
		}
		q := i + j
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for p := q - 1; p >= start && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}

// isNumber reports whether b is a JSON number.
func isNumber(b []byte) bool {
	i := 0
	digits := func() int {
		s := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i - s
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

// skipValue returns the index after the JSON value starting at b[i], or
// scanIncomplete / scanInvalid. Nested containers are matched bracket by
// bracket (strings respected) without validating their insides fully.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return scanIncomplete
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		var stack [32]byte
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				j := skipString(b, i)
				if j < 0 {
					return j
				}
				i = j
				continue
			case '{', '[':
				if depth == len(stack) {
					return scanInvalid
				}
				stack[depth] = b[i]
				depth++
			case '}', ']':
				open := byte('{')
				if b[i] == ']' {
					open = '['
				}
				if depth == 0 || stack[depth-1] != open {
					return scanInvalid
				}
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return scanIncomplete
	case c == '-' || '0' <= c && c <= '9' || c == 't' || c == 'f' || c == 'n':
		j := i
		for j < len(b) && (b[j] == '-' || b[j] == '+' || b[j] == '.' || '0' <= b[j] && b[j] <= '9' ||
			'a' <= b[j] && b[j] <= 'z' || 'A' <= b[j] && b[j] <= 'Z') {
			j++
		}
		if j == len(b) {
			return scanIncomplete // a number may continue
		}
		switch string(b[i:j]) {
		case "true", "false", "null":
			return j
		}
		if !isNumber(b[i:j]) {
			return scanInvalid
		}
		return j
	}
	return scanInvalid
}

// objectEnd returns the index just after the JSON object that starts (after
// optional whitespace) at the beginning of b, scanIncomplete if more input is
// needed, or scanInvalid.
func objectEnd(b []byte) int {
	i := skipSpace(b, 0)
	if i == len(b) {
		return scanIncomplete
	}
	if b[i] != '{' {
		return scanInvalid
	}
	return skipValue(b, i)
}

// objIter walks the members of one JSON object.
type objIter struct {
	b    []byte
	i    int
	n    int
	bad  bool
	done bool
}

// newObjIter starts iterating the object at the start of b.
func newObjIter(b []byte) objIter {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return objIter{bad: true}
	}
	return objIter{b: b, i: i + 1}
}

// next returns the next member: the key without quotes (escapes left as
// they are) and the raw value. ok is false at the end or on malformed
// input; check it.bad afterwards.
func (it *objIter) next() (key, val []byte, ok bool) {
	if it.bad || it.done {
		return nil, nil, false
	}
	b := it.b
	i := skipSpace(b, it.i)
	if i < len(b) && b[i] == '}' {
		it.i, it.done = i+1, true
		return nil, nil, false
	}
	if it.n > 0 {
		if i >= len(b) || b[i] != ',' {
			it.bad = true
			return nil, nil, false
		}
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		it.bad = true
		return nil, nil, false
	}
	ke := skipString(b, i)
	if ke < 0 {
		it.bad = true
		return nil, nil, false
	}
	key = b[i+1 : ke-1]
	i = skipSpace(b, ke)
	if i >= len(b) || b[i] != ':' {
		it.bad = true
		return nil, nil, false
	}
	i = skipSpace(b, i+1)
	ve := skipValue(b, i)
	if ve < 0 {
		it.bad = true
		return nil, nil, false
	}
	val = b[i:ve]
	it.i = ve
	it.n++
	return key, val, true
}

// rest reports whether only whitespace follows the object.
func (it *objIter) trailingOK() bool {
	return it.done && skipSpace(it.b, it.i) == len(it.b)
}

// strValue returns the contents of a JSON string value (escapes not
// decoded), or nil if val is not a string.
func strValue(val []byte) []byte {
	if len(val) >= 2 && val[0] == '"' {
		return val[1 : len(val)-1]
	}
	return nil
}

// parseCheck extracts verdict and reason from a flat check answer. ok is
// false when the body is not a single JSON object.
func parseCheck(body []byte) (verdict, reason []byte, ok bool) {
	it := newObjIter(body)
	for {
		k, v, more := it.next()
		if !more {
			break
		}
		switch string(k) {
		case "verdict":
			verdict = strValue(v)
		case "reason":
			reason = strValue(v)
		}
	}
	return verdict, reason, it.trailingOK()
}

// rpcAnswer is what parseRPC found in a JSON-RPC response.
type rpcAnswer struct {
	verdict, reason []byte
	isError         bool
	code            int // error code when isError
}

// parseRPC checks a JSON-RPC 2.0 response to the request with id wantID and
// extracts the check result or the error code. ok is false for anything that
// is not a well-formed response to that request.
func parseRPC(body []byte, wantID uint64) (a rpcAnswer, ok bool) {
	it := newObjIter(body)
	var version, idOK, haveResult bool
	for {
		k, v, more := it.next()
		if !more {
			break
		}
		switch string(k) {
		case "jsonrpc":
			version = string(strValue(v)) == "2.0"
		case "id":
			n, err := strconv.ParseUint(string(v), 10, 64)
			idOK = err == nil && n == wantID
		case "result":
			haveResult = true
			var good bool
			a.verdict, a.reason, good = parseCheck(v)
			if !good || a.verdict == nil {
				return a, false
			}
		case "error":
			a.isError = true
			a.code = 0
			e := newObjIter(v)
			for {
				ek, ev, emore := e.next()
				if !emore {
					break
				}
				if string(ek) == "code" {
					a.code, _ = strconv.Atoi(string(ev))
				}
			}
			if e.bad {
				return a, false
			}
		}
	}
	if !it.trailingOK() || !version || haveResult == a.isError {
		return a, false
	}
	// An error answer may carry a null id (e.g. parse error); a result must
	// answer our id.
	return a, idOK || a.isError
}

// errNetstring reports a framing error in a netstring stream.
var errNetstring = errors.New("malformed netstring")

// maxNetstring bounds the payload accepted from the server.
const maxNetstring = 1 << 20

// readNetstring reads one "<len>:<payload>," frame into buf (grown as
// needed) and returns the payload.
func readNetstring(r *bufio.Reader, buf []byte) ([]byte, error) {
	n := 0
	digits := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
		if c == ':' {
			break
		}
		if c < '0' || c > '9' || digits == 7 {
			return buf, errNetstring
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if digits == 0 || n > maxNetstring {
		return buf, errNetstring
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	c, err := r.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	if c != ',' {
		return buf, errNetstring
	}
	return buf, nil
}

// isBlank reports whether b holds only whitespace.
func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }
