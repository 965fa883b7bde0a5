package vcheckd

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a SemVer 2.0.0 version. Build metadata is kept only for display
// (the release rule ignores it, SemVer §10); it is never part of a release.
type Version struct {
	Major, Minor, Patch uint64
	// Pre is the pre-release part without its '-' ("rc.1"), or "".
	Pre string
	// Build is the build metadata without its '+', or "".
	Build string
}

// ParseVersion parses SemVer 2.0.0 text such as "2.4.1", "2.5.0-rc.1" or
// "2.4.1+build.7".
func ParseVersion(text string) (Version, error) {
	var v Version
	rest := text
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		v.Build = rest[i+1:]
		rest = rest[:i]
		if !validIdentifiers(v.Build, false) {
			return Version{}, fmt.Errorf("version %q: build metadata %q is not SemVer", text, v.Build)
		}
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		v.Pre = rest[i+1:]
		rest = rest[:i]
		if !validPreRelease(v.Pre) {
			return Version{}, fmt.Errorf("version %q: pre-release %q is not SemVer", text, v.Pre)
		}
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", text)
	}
	nums := [3]*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, ok := numericIdentifier(p)
		if !ok {
			return Version{}, fmt.Errorf("version %q: %q is not a number without leading zeros", text, p)
		}
		*nums[i] = n
	}
	return v, nil
}

// numericIdentifier parses a SemVer numeric identifier: digits, no leading zero.
func numericIdentifier(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// validPreRelease: dot-separated identifiers of [0-9A-Za-z-], numeric ones
// without a leading zero (PROTOCOL §20).
func validPreRelease(s string) bool { return validIdentifiers(s, true) }

func validIdentifiers(s string, noLeadingZero bool) bool {
	if s == "" {
		return false
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		numeric := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return false
			}
		}
		if noLeadingZero && numeric && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// String is the version as SemVer text, build metadata included.
func (v Version) String() string {
	s := v.Release().String()
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Release is the version without build metadata: the release it is.
func (v Version) Release() Release {
	return Release{v.Major, v.Minor, v.Patch, v.Pre}
}

// Release is a version without build metadata, as a policy carries it.
type Release struct {
	Major, Minor, Patch uint64
	Pre                 string
}

func (r Release) String() string {
	s := strconv.FormatUint(r.Major, 10) + "." + strconv.FormatUint(r.Minor, 10) + "." + strconv.FormatUint(r.Patch, 10)
	if r.Pre != "" {
		s += "-" + r.Pre
	}
	return s
}

// Compare orders releases by SemVer precedence: -1, 0 or +1.
func (r Release) Compare(o Release) int {
	for _, p := range [3][2]uint64{{r.Major, o.Major}, {r.Minor, o.Minor}, {r.Patch, o.Patch}} {
		if p[0] != p[1] {
			if p[0] < p[1] {
				return -1
			}
			return 1
		}
	}
	return comparePre(r.Pre, o.Pre)
}

// comparePre is SemVer §11.3-4: no pre-release ranks above any pre-release;
// identifiers compare numerically or in ASCII order, numeric below
// alphanumeric, and a shorter list of equal identifiers ranks lower.
func comparePre(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		xn, xNum := numericIdentifier(x)
		yn, yNum := numericIdentifier(y)
		switch {
		case xNum && yNum:
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
		case xNum:
			return -1
		case yNum:
			return 1
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}
