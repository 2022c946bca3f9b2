package query

import "github.com/tollgate/tollgate/origin"

// checkSrcIP validates a src_ip the request carried. Proxies send the
// caller's address as $si, sometimes with the port, in brackets, with blanks
// or an IPv6 zone: origin.ParseSource reads all of those. Anything else
// (a name, 127.0.0.256, 1.2.3, a number, an empty value) is refused with a
// 400 naming the field: taken for "no address", it would be an origin no
// rule can place, and a caller could choose it. A request without src_ip
// (or with null) is decided as one without a source address.
func checkSrcIP(v string) decodeError {
	if _, e := origin.ParseSource(v); e != origin.SourceOK {
		return decodeError{kind: errSrcIP, field: fSrcIP, off: int32(e)}
	}
	return decodeError{}
}

// appendSrcIPMsg appends the message of an errSrcIP.
func appendSrcIPMsg(dst []byte, e decodeError) []byte {
	dst = append(dst, `field \"src_ip\" `...)
	return append(dst, origin.SourceError(e.off).String()...)
}

// appendSrcIPField ends a 400 body for a refused src_ip: the error string
// is closed and the field named, as the admin API names the field it
// refuses. (Kept out of encode.go, whose members are the verdict's.)
func appendSrcIPField(dst []byte) []byte {
	return append(dst, `","field":"src_ip"}`...)
}
