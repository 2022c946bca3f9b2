package main

import (
	"strconv"
)

// callID is the per-request SIP Call-ID: the run's prefix and the request's
// sequence number, so every request of a run carries a distinct Call-ID.
type callID struct {
	prefix string
	seq    uint64
}

func (c callID) appendTo(dst []byte) []byte {
	dst = append(dst, c.prefix...)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, c.seq, 10)
}

const hexDigits = "0123456789ABCDEF"

// isUnreserved reports whether b may appear unescaped in a query value
// (RFC 3986 unreserved characters).
func isUnreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '_' || b == '.' || b == '~'
}

// appendQueryEscape percent-encodes s as a query value; notably "+" becomes
// %2B so an E.164 number is not read back as a space.
func appendQueryEscape(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if isUnreserved(b) {
			dst = append(dst, b)
		} else {
			dst = append(dst, '%', hexDigits[b>>4], hexDigits[b&15])
		}
	}
	return dst
}

// appendQuery appends the query string (without "?") of a GET /v1/check.
func appendQuery(dst []byte, c *call, id callID) []byte {
	dst = append(dst, "to="...)
	dst = appendQueryEscape(dst, c.to)
	dst = append(dst, "&account="...)
	dst = appendQueryEscape(dst, c.account)
	if c.subaccount != "" {
		dst = append(dst, "&subaccount="...)
		dst = appendQueryEscape(dst, c.subaccount)
	}
	if c.from != "" {
		dst = append(dst, "&from="...)
		dst = appendQueryEscape(dst, c.from)
	}
	if c.srcIP != "" {
		dst = append(dst, "&src_ip="...)
		dst = appendQueryEscape(dst, c.srcIP)
	}
	dst = append(dst, "&call_id="...)
	return id.appendTo(dst) // prefix is hex, sequence is digits: nothing to escape
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"', '\\':
			dst = append(dst, '\\', b)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&15])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCheckJSON appends the flat JSON object of a check (the POST
// /v1/check body and the JSON-RPC params).
func appendCheckJSON(dst []byte, c *call, id callID) []byte {
	dst = append(dst, `{"to":`...)
	dst = appendJSONString(dst, c.to)
	dst = append(dst, `,"account":`...)
	dst = appendJSONString(dst, c.account)
	if c.subaccount != "" {
		dst = append(dst, `,"subaccount":`...)
		dst = appendJSONString(dst, c.subaccount)
	}
	if c.from != "" {
		dst = append(dst, `,"from":`...)
		dst = appendJSONString(dst, c.from)
	}
	if c.srcIP != "" {
		dst = append(dst, `,"src_ip":`...)
		dst = appendJSONString(dst, c.srcIP)
	}
	dst = append(dst, `,"call_id":"`...)
	dst = id.appendTo(dst)
	return append(dst, `"}`...)
}

// appendRPC appends a JSON-RPC 2.0 "check" request with the given id.
func appendRPC(dst []byte, c *call, id callID, rpcID uint64) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","method":"check","params":`...)
	dst = appendCheckJSON(dst, c, id)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendUint(dst, rpcID, 10)
	return append(dst, '}')
}

// appendNetstring appends payload framed as a netstring: "<len>:<payload>,".
func appendNetstring(dst, payload []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	dst = append(dst, ':')
	dst = append(dst, payload...)
	return append(dst, ',')
}
