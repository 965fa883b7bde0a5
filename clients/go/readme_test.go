package vcheckd

// README.md's examples are the files under examples/, word for word, and
// the embedding example runs as written against a real vcheckd serving the
// zone whose key it carries (the vectors' key, id 7).

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestReadmeExamplesAreTheFiles(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	for _, f := range []string{"examples/embed/main.go", "examples/agent/main.go"} {
		code, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, b := range blocks {
			found = found || b[1] == string(code)
		}
		if !found {
			t.Errorf("README.md has no go block equal to %s", f)
		}
	}
}

func TestReadmeEmbedExampleRuns(t *testing.T) {
	bin := vcheckdBin(t)
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = lookPath(t, "go", "golang-go")
	}
	v := loadVectors(t)
	keys := t.TempDir()
	if err := os.WriteFile(filepath.Join(keys, "v2.private"), []byte(v.Keys.Private+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "v2.public"), []byte(v.Keys.Public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	z := newZoneDir(t, bin, 2026112301, &zoneDir{dir: keys})
	srv := startServer(t, bin, z, "")
	state := filepath.Join(t.TempDir(), "client-state.json")
	example := func(env ...string) string {
		cmd := exec.Command(goBin, "run", "./examples/embed")
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "DISABLE_") && !strings.HasPrefix(e, "VCHECKD_") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		cmd.Env = append(cmd.Env, append([]string{"VCHECKD_SERVER=" + srv.addr, "VCHECKD_STATE=" + state}, env...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go run ./examples/embed: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := example(); !strings.Contains(out, "version check: upgrade-available: 2.4.1 is available") {
		t.Errorf("the example printed:\n%s", out)
	}
	if out := example("DISABLE_VERSION_CHECK=1"); !strings.Contains(out, "version check disabled") {
		t.Errorf("with DISABLE_VERSION_CHECK=1 the example printed:\n%s", out)
	}
	srv.stop(t)
	recorded := rows(t, z)
	if len(recorded) != 1 {
		t.Fatalf("%d reports recorded, 1 expected: %v", len(recorded), recorded)
	}
	for _, r := range recorded {
		if r[0].Version != "2.3.1" || r[0].Anonymous != 0 {
			t.Errorf("recorded %+v", r[0])
		}
	}
}
