package vcheckd

import "testing"

func TestVersionParse(t *testing.T) {
	for _, ok := range []string{"0.0.0", "2.4.1", "2.5.0-rc.1", "1.2.3-beta.1+exp.sha.5114f85", "2.4.1+build.007", "1.0.0-x-y.0a"} {
		v, err := ParseVersion(ok)
		if err != nil || v.String() != ok {
			t.Errorf("%s: %v %v", ok, v, err)
		}
	}
	for _, bad := range []string{"", "2.4", "v2.4.1", "2.4.1.0", "02.4.1", "2.4.1-", "2.4.1-rc.01", "2.4.1-rc..1", "2.4.1+", "2.4.1-r_c", "2.4.x", "18446744073709551616.0.0"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

// SemVer §11's example order, and build metadata ignored.
func TestVersionPrecedence(t *testing.T) {
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, _ := ParseVersion(order[i])
			b, _ := ParseVersion(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Release().Compare(b.Release()); got != want {
				t.Errorf("%s vs %s: %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	a, _ := ParseVersion("2.4.1+build.7")
	b, _ := ParseVersion("2.4.1")
	if a.Release().Compare(b.Release()) != 0 {
		t.Error("build metadata changed the precedence")
	}
}
