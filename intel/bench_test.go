package intel

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// benchIoCs makes n indicators. With mixed, a tenth of them are of the
// costlier kinds (domains, URLs, globs, substrings, expressions); otherwise
// only hashes, addresses, networks and ports.
func benchIoCs(n int, mixed bool) []tasks.IoC {
	r := rand.New(rand.NewPCG(1, 2))
	hexOf := func(nb int) string {
		b := make([]byte, nb)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return hex.EncodeToString(b)
	}
	out := make([]tasks.IoC, 0, n)
	for i := 0; len(out) < n; i++ {
		var c tasks.IoC
		switch k := i % 20; {
		case k < 6:
			c = tasks.IoC{Type: tasks.IoCSHA256, Value: hexOf(32)}
		case k < 8:
			c = tasks.IoC{Type: tasks.IoCMD5, Value: hexOf(16)}
		case k < 9:
			c = tasks.IoC{Type: tasks.IoCSHA1, Value: hexOf(20)}
		case k < 14:
			c = tasks.IoC{Type: tasks.IoCIP, Value: fmt.Sprintf("%d.%d.%d.%d",
				r.IntN(100)+1, r.IntN(256), r.IntN(256), r.IntN(256))}
		case k < 15:
			c = tasks.IoC{Type: tasks.IoCCIDR, Value: fmt.Sprintf("%d.%d.0.0/%d",
				r.IntN(100)+1, r.IntN(256), 16+r.IntN(3)*4)}
		case k < 16:
			c = tasks.IoC{Type: tasks.IoCPort, Value: fmt.Sprintf("10.%d.%d.%d:%d",
				r.IntN(256), r.IntN(256), r.IntN(256), 1024+r.IntN(60000))}
		case !mixed:
			c = tasks.IoC{Type: tasks.IoCIP, Value: fmt.Sprintf("2001:db8::%x:%x",
				r.Uint32()>>16, r.Uint32()&0xffff)}
		case k < 18:
			c = tasks.IoC{Type: tasks.IoCDomain, Value: fmt.Sprintf("d%x.example", r.Uint64())}
		case k < 19:
			c = tasks.IoC{Type: tasks.IoCProcess, Value: fmt.Sprintf("proc%x", r.Uint32())}
		default:
			c = benchCostly(r, i)
		}
		out = append(out, c)
	}
	for _, p := range []string{"3333", "5555", "14444"} {
		out = append(out, tasks.IoC{Type: tasks.IoCPort, Value: p})
	}
	return out
}

// benchCostly cycles through URLs, names, paths, substrings and
// expressions, keeping globs and expressions to realistic counts.
func benchCostly(r *rand.Rand, i int) tasks.IoC {
	switch (i / 20) % 10 {
	case 0, 1:
		return tasks.IoC{Type: tasks.IoCURL, Value: fmt.Sprintf("http://u%x.example/p", r.Uint64())}
	case 2, 3:
		return tasks.IoC{Type: tasks.IoCFileName, Value: fmt.Sprintf("f%x.bin", r.Uint32())}
	case 4:
		return tasks.IoC{Type: tasks.IoCPath, Value: fmt.Sprintf("/opt/x%x/bin", r.Uint32())}
	case 5, 6, 7:
		return tasks.IoC{Type: tasks.IoCCmdline, Value: fmt.Sprintf("--opt-%x", r.Uint64())}
	case 8:
		if i%2000 < 20 {
			return tasks.IoC{Type: tasks.IoCCmdlineRE, Value: fmt.Sprintf(`-o \S+:%d\b`, i)}
		}
		return tasks.IoC{Type: tasks.IoCFileName, Value: fmt.Sprintf("g%x*.sh", r.Uint32()%50)}
	}
	return tasks.IoC{Type: tasks.IoCDomain, Value: fmt.Sprintf("e%x.example", r.Uint64())}
}

// benchRecords are realistic process and connection records, most of
// which match nothing, as on a real host.
func benchRecords() []*tasks.Record {
	var out []*tasks.Record
	for i := range 64 {
		out = append(out, &tasks.Record{Kind: tasks.KindProcess, Host: "h", Fields: map[string]any{
			"pid": int64(1000 + i), "ppid": int64(1), "name": "python3",
			"exe":     "/usr/bin/python3.10",
			"cmdline": "/usr/bin/python3 -u /usr/sbin/waagent -daemon --verbose",
			"user":    "root", "cwd": "/", "started": "2024-08-05T08:22:10Z",
			"exe_sha256":  "9f2b6c1d0e4a7b3c5d8e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c",
			"exe_deleted": false, "parent_name": "systemd",
		}})
		out = append(out, &tasks.Record{Kind: tasks.KindConnection, Host: "h", Fields: map[string]any{
			"protocol": "tcp", "local_address": "10.20.30.40", "local_port": int64(40112),
			"remote_address": fmt.Sprintf("168.63.%d.16", i), "remote_port": int64(443),
			"state": "ESTABLISHED", "pid": int64(655), "process_name": "python3",
			"process_exe": "/usr/bin/python3.10",
		}})
	}
	return out
}

// hitRecords are connections to a listed mining port, as a miner makes.
func hitRecords() []*tasks.Record {
	var out []*tasks.Record
	for i := range 64 {
		out = append(out, &tasks.Record{Kind: tasks.KindConnection, Host: "h", Fields: map[string]any{
			"protocol": "tcp", "local_address": "10.20.30.40", "local_port": int64(40112),
			"remote_address": fmt.Sprintf("192.0.2.%d", i), "remote_port": int64(3333),
			"state": "ESTABLISHED", "pid": int64(655), "process_name": "kworkerd",
			"process_exe": "/tmp/.x/kworkerd",
		}})
	}
	return out
}

func BenchmarkMatch(b *testing.B) {
	sets := []struct {
		name  string
		mixed bool
	}{{"hash-ip-port", false}, {"mixed", true}}
	records := benchRecords()
	for _, set := range sets {
		m, err := Compile(benchIoCs(100_000, set.mixed), CompileOptions{Now: testNow})
		if err != nil {
			b.Fatal(err)
		}
		for _, kind := range []string{tasks.KindProcess, tasks.KindConnection, "hit"} {
			var rs []*tasks.Record
			for _, r := range records {
				if r.Kind == kind {
					rs = append(rs, r)
				}
			}
			if kind == "hit" {
				// Connections to a listed pool port: each gives a detection.
				rs = hitRecords()
			}
			b.Run(set.name+"/"+kind, func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					m.Match(rs[n%len(rs)])
					n++
				}
				rate := float64(n) / b.Elapsed().Seconds()
				b.ReportMetric(rate, "records/s")
				// The machine is shared: the same run hashes 1 KiB blocks
				// as sha256sum does, and the ratio says how many records
				// are matched in the time one block is hashed.
				b.ReportMetric(rate/sha256Yardstick(), "records/sha256-KiB")
			})
		}
	}
}

// sha256Yardstick returns how many 1 KiB blocks one core hashes per
// second right now: the median of seven 10 ms samples, so that one
// moment off the CPU does not set it.
func sha256Yardstick() float64 {
	block := make([]byte, 1024)
	rates := make([]float64, 7)
	for i := range rates {
		start := time.Now()
		n := 0
		for time.Since(start) < 10*time.Millisecond {
			for range 64 {
				sum := sha256.Sum256(block)
				block[0] ^= sum[0]
			}
			n += 64
		}
		rates[i] = float64(n) / time.Since(start).Seconds()
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}

func BenchmarkCompile(b *testing.B) {
	iocs := benchIoCs(100_000, true)
	for b.Loop() {
		if _, err := Compile(iocs, CompileOptions{Now: testNow}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSet(b *testing.B) {
	iocs := benchIoCs(100_000, true)
	ups := Adds(iocs, NewClock(nil), "node-a")
	b.Run("apply-100k", func(b *testing.B) {
		for b.Loop() {
			s := NewSet()
			if _, err := s.ApplyAll(ups); err != nil {
				b.Fatal(err)
			}
		}
	})
	s := NewSet()
	if _, err := s.ApplyAll(ups); err != nil {
		b.Fatal(err)
	}
	b.Run("digest-100k", func(b *testing.B) {
		for b.Loop() {
			s.Digest()
		}
	})
	b.Run("marshal-unmarshal-100k", func(b *testing.B) {
		for b.Loop() {
			data, _ := s.MarshalBinary()
			if err := NewSet().UnmarshalBinary(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
