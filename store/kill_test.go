package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// helperDirEnv tells the re-executed test binary to act as the writer.
const helperDirEnv = "HUNTMESH_STORE_HELPER_DIR"

const (
	helperBatches   = 20
	helperBatchSize = 50
)

// TestHelperWriter is the child of TestKillSurvival: it writes records in
// batches, reports "stored" once PutRecords has returned for all of them,
// then waits to be killed.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestKillSurvival")
	}
	s, err := Open(DefaultConfig(dir))
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	for b := range helperBatches {
		recs := make([]tasks.Record, helperBatchSize)
		for i := range recs {
			recs[i] = sampleRecord(b*helperBatchSize + i)
		}
		if err := s.PutRecords(fmt.Sprintf("T%d", b%3), recs); err != nil {
			fmt.Println("put failed:", err)
			os.Exit(2)
		}
	}
	if fresh, err := s.MarkSeen("01KILLED", time.Now().Add(time.Hour)); !fresh || err != nil {
		fmt.Println("mark failed:", err)
		os.Exit(2)
	}
	fmt.Println("stored")
	time.Sleep(time.Minute) // killed long before this
	os.Exit(3)
}

// TestKillSurvival kills a writer with SIGKILL right after it reports its
// records stored, and checks that every one of them is there on reopen.
func TestKillSurvival(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.v")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Wait for "stored", then kill without warning.
	stored := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "stored" {
				stored <- true
				return
			}
			t.Logf("child: %s", sc.Text())
		}
		stored <- false
	}()
	select {
	case ok := <-stored:
		if !ok {
			_ = cmd.Wait()
			t.Fatal("child ended without reporting stored")
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child did not report stored in time")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}

	// Every record, index entry and the seen mark must have survived.
	s, err := Open(DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := map[int64]bool{}
	err = s.Records(context.Background(), Filter{}, func(r tasks.Record) error {
		n, _ := r.Int("i")
		got[n] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(helperBatches * helperBatchSize) {
		if !got[i] {
			t.Errorf("record %d lost", i)
		}
	}
	if n := len(allRecords(t, s, Filter{TaskID: "T0"})); n != 7*helperBatchSize {
		t.Errorf("task T0 has %d records, want %d", n, 7*helperBatchSize)
	}
	if fresh, err := s.MarkSeen("01KILLED", time.Now().Add(time.Hour)); fresh || err != nil {
		t.Errorf("seen mark lost: fresh=%v err=%v", fresh, err)
	}
}
