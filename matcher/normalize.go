package matcher

// MaxDialled is the longest user part tollgate accepts as a number, after
// any sip:/tel: wrapping is removed: E.164 is 15 digits, and 32 leaves room
// for an international prefix and separators but not for garbage.
const MaxDialled = 32

// maxInput bounds the raw string including URI wrapping and parameters.
const maxInput = 256

// dialled is a dialled string reduced to its digits.
type dialled struct {
	d    [MaxDialled]byte
	n    int
	plus bool // written with a leading '+' (or %2B): international
}

func (x *dialled) digits() []byte { return x.d[:x.n] }

// hasPrefixFold reports whether s starts with lower-case prefix p, ignoring
// ASCII case.
func hasPrefixFold(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normalize reduces what a SIP proxy passes as the dialled number — a bare
// user part, a tel: or sip: URI, percent-encoded ("%2B44…"), with visual
// separators — to digits and a '+' flag. It never allocates.
func normalize(s string, x *dialled) InvalidKind {
	x.n, x.plus = 0, false
	if len(s) > maxInput {
		return InvalidTooLong
	}
	switch {
	case hasPrefixFold(s, "sip:"):
		s = s[4:]
	case hasPrefixFold(s, "sips:"):
		s = s[5:]
	case hasPrefixFold(s, "tel:"):
		s = s[4:]
	}
	// The user part ends at the host or at the first URI/tel parameter.
	for i := 0; i < len(s); i++ {
		if s[i] == '@' || s[i] == ';' {
			s = s[:i]
			break
		}
	}
	if len(s) == 0 {
		return InvalidEmpty
	}
	chars := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return InvalidCharacter
			}
			c = hi<<4 | lo
			i += 2
		} else if c == '%' {
			return InvalidCharacter
		}
		chars++
		if chars > MaxDialled {
			return InvalidTooLong
		}
		switch {
		case c >= '0' && c <= '9':
			if x.n == len(x.d) {
				return InvalidTooLong
			}
			x.d[x.n] = c
			x.n++
		case c == '+':
			// Only as the very first character.
			if x.plus || x.n > 0 || chars != 1 {
				return InvalidCharacter
			}
			x.plus = true
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return InvalidCharacter
		}
	}
	if x.n == 0 {
		return InvalidEmpty
	}
	return InvalidNone
}

// routingNumber finds the routing number of a dialled string: the RFC 4694
// "rn" parameter of a tel: URI, of a SIP URI's user part (user=phone) or of
// the SIP URI itself, where a carrier routes on it instead of the dialled
// number. Parameter names are compared ignoring case, blanks around them
// and percent-escapes ("R%6E"), as a lenient carrier would read them; the
// URI's headers (after '?') are not parameters. n is how many rn
// parameters there are, rn the value of the first ("" when it has none).
// It never allocates.
func routingNumber(s string) (rn string, n int) {
	if len(s) > maxInput {
		return "", 0
	}
	start := 0
	var prev byte // the separator before s[start:]
	for j := 0; j <= len(s); j++ {
		var c byte
		if j < len(s) {
			c = s[j]
			if c != ';' && c != '@' && c != '?' {
				continue
			}
		}
		if prev == ';' {
			name, value, hasValue := s[start:j], "", false
			for k := 0; k < len(name); k++ {
				if name[k] == '=' {
					name, value, hasValue = name[:k], name[k+1:], true
					break
				}
			}
			if isRNName(name) {
				n++
				if n == 1 && hasValue {
					rn = value
				}
			}
		}
		if c == '?' || j == len(s) {
			break
		}
		prev, start = c, j+1
	}
	return rn, n
}

// isRNName reports whether a URI parameter name reads "rn".
func isRNName(name string) bool {
	var b [2]byte
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == ' ' || c == '\t' {
			if n == 0 || i+1 == len(name) || name[i+1] == ' ' || name[i+1] == '\t' {
				continue // leading or trailing blanks
			}
			return false
		}
		if c == '%' {
			if i+2 >= len(name) {
				return false
			}
			hi, ok1 := unhex(name[i+1])
			lo, ok2 := unhex(name[i+2])
			if !ok1 || !ok2 {
				return false
			}
			c = hi<<4 | lo
			i += 2
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if n == 2 {
			return false
		}
		b[n] = c
		n++
	}
	return n == 2 && b[0] == 'r' && b[1] == 'n'
}
