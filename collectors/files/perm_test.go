package files

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/huntmesh/huntmesh/collectors"
)

// permRootEnv carries the tree to scan into the unprivileged child.
const permRootEnv = "HUNTMESH_FILES_PERM_ROOT"

// nobody is the uid and gid the child runs as when the test runs as root.
const nobody = 65534

// TestFilesPermission checks that unreadable files and untraversable
// directories are counted as "permission". Root reads everything, so when
// running as root the scan runs in a copy of this test binary started as
// nobody.
func TestFilesPermission(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "open.txt"), "open", 0o644)
	writeFile(t, filepath.Join(root, "secret.txt"), "secret", 0o000)
	writeFile(t, filepath.Join(root, "locked/inner.txt"), "inner", 0o644)
	if err := os.Chmod(filepath.Join(root, "locked"), 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(filepath.Join(root, "locked"), 0o000); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(filepath.Join(root, "locked"), 0o700) })
	}

	var sum collectors.Summary
	var paths []string
	if os.Geteuid() == 0 {
		sum, paths = runAsNobody(t, root)
	} else {
		recs, s, err := collect(t, NewFiles(nil), runOpts{root: root}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sum = s
		for _, r := range recs {
			paths = append(paths, r.Str("path"))
		}
	}
	if sum.Skipped["permission"] != 2 || len(paths) != 1 || paths[0] != "/open.txt" {
		t.Fatalf("summary %+v, paths %v; want 2 permission skips and /open.txt", sum, paths)
	}
}

// runAsNobody runs the scan of root in a child process as nobody.
func runAsNobody(t *testing.T, root string) (collectors.Summary, []string) {
	t.Helper()

	// The child must reach the tree and its own binary.
	for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "..", "files.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(bin)

	cmd := exec.Command(bin, "-test.run=^TestFilesPermissionChild$", "-test.v")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), permRootEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody},
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var res permResult
	for _, line := range bytes.Split(out, []byte("\n")) {
		if json.Unmarshal(line, &res) == nil && res.Paths != nil {
			return res.Summary, res.Paths
		}
	}
	t.Fatalf("no result from child:\n%s", out)
	return collectors.Summary{}, nil
}

type permResult struct {
	Summary collectors.Summary `json:"summary"`
	Paths   []string           `json:"paths"`
}

// TestFilesPermissionChild is the child half of TestFilesPermission; it
// does nothing unless started by it.
func TestFilesPermissionChild(t *testing.T) {
	root := os.Getenv(permRootEnv)
	if root == "" {
		t.Skip("helper for TestFilesPermission")
	}
	recs, sum, err := collect(t, NewFiles(nil), runOpts{root: root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := permResult{Summary: sum, Paths: []string{}}
	for _, r := range recs {
		res.Paths = append(res.Paths, r.Str("path"))
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}
