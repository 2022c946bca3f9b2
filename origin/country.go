package origin

// cc is an ISO 3166 alpha-2 code packed into 10 bits: 0 is "unknown",
// otherwise 1 + 26*(first letter) + (second letter). Packing keeps the range
// tables small and lets a code be turned back into a string without
// allocating (ccNames).
type cc uint16

const numCC = 26*26 + 1

// ccNames holds every packed code's string, so ccName never allocates.
var ccNames = func() (t [numCC]string) {
	var b [2 * 26 * 26]byte
	for i := 0; i < 26; i++ {
		for j := 0; j < 26; j++ {
			k := 2 * (i*26 + j)
			b[k], b[k+1] = byte('A'+i), byte('A'+j)
		}
	}
	s := string(b[:])
	for i := 1; i < numCC; i++ {
		t[i] = s[2*(i-1) : 2*i]
	}
	return t
}()

// packCC packs a two-letter code, either case; anything else is 0.
func packCC(s string) cc {
	if len(s) != 2 {
		return 0
	}
	a, b := s[0]|0x20, s[1]|0x20 // lower-case letters
	if a < 'a' || a > 'z' || b < 'a' || b > 'z' {
		return 0
	}
	return cc(1 + int(a-'a')*26 + int(b-'a'))
}

// String is the upper-case code, "" for 0.
func (c cc) String() string {
	if int(c) < numCC {
		return ccNames[c]
	}
	return ""
}
