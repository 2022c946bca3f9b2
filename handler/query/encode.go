package query

import (
	"strconv"
	"unicode/utf8"

	"github.com/tollgate/tollgate/matcher"
)

// AppendVerdict appends the flat verdict object every transport returns, in
// the field order of the wire contract. It is the only verdict encoder: the
// HTTP body, the JSON-RPC result, the TCP replies and `tollgate check --json`
// are the same bytes. It allocates nothing when dst has room.
func AppendVerdict(dst []byte, v *matcher.Verdict) []byte {
	// verdict, reason, code, sip_code, sip_reason and message depend on
	// the action and the reason only: encoded once (verdictHeads).
	if int(v.Action) < len(verdictHeads) && v.Reason < matcher.Reason(len(matcher.Reasons)) {
		dst = append(dst, verdictHeads[v.Action][v.Reason]...)
	} else {
		dst = appendVerdictHead(dst, v.Action, v.Reason)
	}
	dst = append(dst, `,"country":`...)
	dst = AppendJSONString(dst, v.Country)
	dst = append(dst, `,"e164":`...)
	dst = AppendJSONString(dst, b2s(v.E164Bytes()))
	dst = append(dst, `,"account":`...)
	dst = AppendJSONString(dst, v.Account)
	dst = append(dst, `,"rule":`...)
	// The rule text holds operator-written reasons and the account name, so
	// it is escaped: written raw where it goes, and escaped there only if
	// it needs it.
	dst = appendJSONInPlace(dst, v.AppendRule)
	dst = append(dst, `,"max_channels":`...)
	dst = appendInt(dst, v.MaxChannels)
	dst = append(dst, `,"max_cps":`...)
	dst = appendInt(dst, v.MaxCPS)
	if v.AccountMaxChannels != 0 || v.AccountMaxCPS != 0 {
		// only for an account that sets account-wide caps
		dst = append(dst, `,"account_max_channels":`...)
		dst = appendInt(dst, v.AccountMaxChannels)
		dst = append(dst, `,"account_max_cps":`...)
		dst = appendInt(dst, v.AccountMaxCPS)
	}
	if v.DecidedBy != matcher.DecidedByNone {
		// only when the dialled string carried a routing number (rn=)
		dst = append(dst, `,"decided_by":"`...)
		dst = append(dst, v.DecidedBy.String()...)
		dst = append(dst, `","rn":`...)
		dst = AppendJSONString(dst, b2s(v.RNBytes()))
	}
	if v.Template != "" {
		// only when the account's template decided (the rule says how)
		dst = append(dst, `,"template":`...)
		dst = AppendJSONString(dst, v.Template)
	}
	return append(dst, '}')
}

// appendVerdictHead appends the verdict object's opening and its fields
// that follow from the action and the reason alone, up to "message".
func appendVerdictHead(dst []byte, a matcher.Action, r matcher.Reason) []byte {
	info := r.Info()
	dst = append(dst, `{"verdict":"`...)
	dst = append(dst, a.String()...)
	dst = append(dst, `","reason":"`...)
	dst = append(dst, info.Name...)
	dst = append(dst, `","code":`...)
	dst = strconv.AppendInt(dst, int64(info.Code), 10)
	dst = append(dst, `,"sip_code":`...)
	dst = strconv.AppendInt(dst, int64(info.SIPCode), 10)
	dst = append(dst, `,"sip_reason":`...)
	dst = AppendJSONString(dst, info.SIPReason)
	dst = append(dst, `,"message":`...)
	return AppendJSONString(dst, info.Message)
}

// verdictHeads is appendVerdictHead for every action and reason, made
// once: the reason table (matcher.Reasons) is fixed at build time.
var verdictHeads = func() (t [3][len(matcher.Reasons)][]byte) { // allow, reject, screen
	for a := range t {
		for r := range t[a] {
			t[a][r] = appendVerdictHead(nil, matcher.Action(a), matcher.Reason(r))
		}
	}
	return t
}()

// appendJSONInPlace appends, as a JSON string, the text fill appends:
// fill writes it raw after the opening quote, and it is escaped there
// only if a byte needs it (the escaped form is built after the raw text,
// then moved down over it). No scratch buffer; no allocation when dst has
// room.
func appendJSONInPlace(dst []byte, fill func([]byte) []byte) []byte {
	dst = append(dst, '"')
	p := len(dst)
	dst = fill(dst)
	raw := dst[p:]
	i := 0
	for i < len(raw) && jsonPlain[raw[i]] {
		i++
	}
	if i == len(raw) {
		return append(dst, '"')
	}
	// Escape raw[i:] after the raw text (raw stays readable if append
	// moves dst: the old array is not written), then move it down.
	q := len(dst)
	dst = AppendJSONString(dst, b2s(raw[i:]))
	n := copy(dst[p+i:], dst[q+1:len(dst)-1]) // without the quotes AppendJSONString added
	dst = dst[:p+i+n]
	return append(dst, '"')
}

// jsonPlain marks the bytes AppendJSONString copies as they are: printable
// ASCII but '"' and '\\'.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD
// so the output is always valid JSON whatever a client sent.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonPlain[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendErrorBody appends the 400 body {"error":"…"}, with "field" for a
// refused src_ip (as the admin API names the field it refuses).
func appendErrorBody(dst []byte, e decodeError) []byte {
	dst = append(dst, `{"error":"`...)
	dst = e.appendMsg(dst)
	if e.kind == errSrcIP {
		return appendSrcIPField(dst)
	}
	return append(dst, `"}`...)
}

// CompactFields is the number of fields of a compact verdict (format
// version 1). Later versions only append fields, so a reader selecting
// fields by position keeps working; a line with fewer is not a verdict.
const CompactFields = 10

// AppendVerdictCompact appends the compact verdict a proxy config reads
// with plain string operations (Kamailio's {s.select,N,|}) instead of a
// JSON parse: the fields the shipped configs act on, in this order,
// separated by '|':
//
//	verdict|reason|code|sip_code|sip_reason|e164|max_channels|max_cps|account_max_channels|account_max_cps
//
// e.g. allow|ok|1000|200|OK|+14155550123|160|20|0|0. The numbers are
// decimal integers, 0 meaning no cap (the account-wide caps are 0 when the
// account sets none, where the verdict object leaves them out). Text
// fields hold printable ASCII other than '|', '"' and '\\' (any other byte
// becomes '_'), so the line splits into exactly CompactFields fields and
// is a JSON string's content as it is. It allocates nothing when dst has
// room.
func AppendVerdictCompact(dst []byte, v *matcher.Verdict) []byte {
	info := v.Reason.Info()
	dst = appendCompactText(dst, v.Action.String())
	dst = append(dst, '|')
	dst = appendCompactText(dst, info.Name)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(info.Code), 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(info.SIPCode), 10)
	dst = append(dst, '|')
	dst = appendCompactText(dst, info.SIPReason)
	dst = append(dst, '|')
	dst = appendCompactText(dst, b2s(v.E164Bytes()))
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(v.MaxChannels), 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(v.MaxCPS), 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(v.AccountMaxChannels), 10)
	dst = append(dst, '|')
	return strconv.AppendInt(dst, int64(v.AccountMaxCPS), 10)
}

// appendCompactText appends s with every byte a compact field cannot hold
// (outside printable ASCII, or '|', '"', '\\') replaced by '_'.
func appendCompactText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '|' || c == '"' || c == '\\' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}
