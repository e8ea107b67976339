package intel

import (
	"slices"
	"strings"
	"testing"
)

// importPattern runs one pattern through the STIX importer.
func importPattern(t *testing.T, pattern string) Import {
	t.Helper()
	c := newCollector("stix")
	c.indicator(&stixObject{Type: "indicator", ID: "indicator--x", Pattern: pattern},
		nil, "test", testNow)
	return c.imp
}

func TestSTIXPatternToIoCs(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		want    []string // "type value"
		skip    string   // a reason one skip must contain
	}{
		{"ipv4", "[ipv4-addr:value = '192.0.2.1']", []string{"ip 192.0.2.1"}, ""},
		{"ipv4 network", "[ipv4-addr:value = '198.51.100.0/24']",
			[]string{"cidr 198.51.100.0/24"}, ""},
		{"ipv6", "[ipv6-addr:value = '2001:DB8::1']", []string{"ip 2001:db8::1"}, ""},
		{"quoted hash keys", "[file:hashes.'SHA-256' = 'AA" + strings.Repeat("b", 62) +
			"' OR file:hashes.'SHA-1' = '" + strings.Repeat("c", 40) + "' OR file:hashes.MD5 = '" +
			strings.Repeat("d", 32) + "']", []string{
			"sha256 aa" + strings.Repeat("b", 62), "sha1 " + strings.Repeat("c", 40),
			"md5 " + strings.Repeat("d", 32)}, ""},
		{"IN list", "[domain-name:value IN ('a.example', 'b.example')]",
			[]string{"domain a.example", "domain b.example"}, ""},
		{"address and port", "[network-traffic:dst_ref.value = '192.0.2.25' AND " +
			"network-traffic:dst_port = 3333]", []string{"port 192.0.2.25:3333"}, ""},
		{"v6 address and port", "[network-traffic:dst_port = 443 AND " +
			"network-traffic:dst_ref.value = '2001:db8::2']", []string{"port [2001:db8::2]:443"}, ""},
		{"address list and port", "[network-traffic:dst_ref.value IN ('192.0.2.1', " +
			"'192.0.2.2') AND network-traffic:dst_port IN (3333, 5555)]", []string{
			"port 192.0.2.1:3333", "port 192.0.2.1:5555", "port 192.0.2.2:3333",
			"port 192.0.2.2:5555"}, ""},
		{"redundant ref type", "[network-traffic:dst_ref.type = 'ipv4-addr' AND " +
			"network-traffic:dst_ref.value = '192.0.2.9']", []string{"ip 192.0.2.9"}, ""},
		{"ref type with address and port", "[network-traffic:dst_ref.type = 'ipv4-addr' AND " +
			"network-traffic:dst_ref.value = '192.0.2.9' AND network-traffic:dst_port = 80]",
			[]string{"port 192.0.2.9:80"}, ""},
		{"domain and port", "[network-traffic:dst_ref.value = 'Pool.Example' AND " +
			"network-traffic:dst_port = 3333]", []string{"domain pool.example"}, ""},
		{"network and port", "[network-traffic:dst_ref.value = '192.0.2.0/24' AND " +
			"network-traffic:dst_port = 3333]", nil, "cannot be paired with a port"},
		{"executable hash", "[process:image_ref.hashes.'SHA-256' = '" +
			strings.Repeat("a", 64) + "' OR process:binary_ref.hashes.MD5 = '" +
			strings.Repeat("b", 32) + "']", []string{"sha256 " + strings.Repeat("a", 64),
			"md5 " + strings.Repeat("b", 32)}, ""},
		{"parent name", "[process:parent_ref.name = 'bash']", []string{"process bash"}, ""},
		{"destination domain", "[network-traffic:dst_ref.value = 'pool.example']",
			[]string{"domain pool.example"}, ""},
		{"network as subset", "[ipv4-addr:value ISSUBSET '198.51.100.0/24']",
			[]string{"cidr 198.51.100.0/24"}, ""},
		{"directory", "[directory:path = '/opt/.cache/']", []string{"path /opt/.cache/*"}, ""},
		{"hash wins in AND", "[file:name = 'x.exe' AND file:hashes.MD5 = '" +
			strings.Repeat("e", 32) + "']", []string{"md5 " + strings.Repeat("e", 32)}, ""},
		{"name in directory", "[file:name = 'kworkerd' AND " +
			"file:parent_directory_ref.path = '/opt/.cache/']",
			[]string{"path /opt/.cache/kworkerd"}, ""},
		{"command line regex", `[process:command_line MATCHES '^xmrig\\s+-o ']`,
			[]string{`cmdline-re ^xmrig\s+-o `}, ""},
		{"command line equality", "[process:command_line = 'a.exe -x']",
			[]string{`cmdline-re ^a\.exe -x$`}, ""},
		{"command line like", "[process:command_line LIKE '%--donate-level%']",
			[]string{`cmdline-re ^.*--donate-level.*$`}, ""},
		{"file name like", "[file:name LIKE 'deploy-%.ps1']",
			[]string{"filename deploy-*.ps1"}, ""},
		{"process name", "[process:name = 'KWorkerd']", []string{"process kworkerd"}, ""},
		{"url", "[url:value = 'HTTP://Evil.Example/a']", []string{"url http://evil.example/a"}, ""},
		{"escaped quote", `[file:name = 'it\'s.txt']`, []string{"filename it's.txt"}, ""},
		{"or of observations", "[ipv4-addr:value = '192.0.2.1'] OR [domain-name:value = 'x.example']",
			[]string{"ip 192.0.2.1", "domain x.example"}, ""},
		{"qualifier kept", "[ipv4-addr:value = '192.0.2.1'] REPEATS 5 TIMES WITHIN 60 SECONDS",
			[]string{"ip 192.0.2.1"}, ""},
		{"and of observations", "[ipv4-addr:value = '192.0.2.1'] AND [domain-name:value = 'x.example']",
			nil, "need correlation"},
		{"followedby", "[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [file:name = 'a']",
			nil, "need correlation"},
		{"matches elsewhere", "[email-message:subject MATCHES '^Hi']", nil, "no matching record"},
		{"matches on a name", "[file:name MATCHES '^a']", nil, "only used on command lines"},
		{"negated", "[ipv4-addr:value NOT = '192.0.2.1']", nil, "negated"},
		{"other operator", "[network-traffic:dst_port > 1024]", nil, "operator >"},
		{"unknown hash", "[file:hashes.SSDEEP = '3:a:b']", nil, "not collected"},
		{"unrelated AND", "[file:name = 'a' AND file:size = 10]", nil, "cannot be matched"},
		{"list index path", "[email-message:body_multipart[*].body_raw_ref.name = 'a']", nil,
			"no matching record"},
		{"syntax error", "[ipv4-addr:value = '1.2.3.4'", nil, "bad stix pattern"},
		{"unterminated string", "[ipv4-addr:value = '1.2.3.4]", nil, "unterminated"},
		{"bad value", "[ipv4-addr:value = '999.1.1.1']", nil, "invalid ioc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			imp := importPattern(t, tc.pattern)
			var got []string
			for _, c := range imp.IoCs {
				got = append(got, c.Type+" "+c.Value)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q (skips %v)", got, tc.want, imp.Skipped)
			}
			if tc.skip != "" {
				found := false
				for _, s := range imp.Skipped {
					found = found || strings.Contains(s.Reason, tc.skip)
				}
				if !found {
					t.Errorf("no skip with %q: %v", tc.skip, imp.Skipped)
				}
			}
		})
	}
}

func TestSTIXPatternParse(t *testing.T) {
	tests := []struct {
		name, pattern string
		ok            bool
	}{
		{"start stop", "[file:name = 'a'] START t'2016-06-01T00:00:00Z' " +
			"STOP t'2016-07-01T00:00:00Z'", true},
		{"nested parens", "(([file:name = 'a'] OR [file:name = 'b']) AND " +
			"[ipv4-addr:value = '1.2.3.4'])", true},
		{"exists", "[EXISTS windows-registry-key:values]", true},
		{"hex and binary", "[file:magic_number_hex = h'ffd8' AND artifact:payload_bin = b'AAAA']", true},
		{"bool and float", "[x-a:b = true AND x-a:c = 1.5 AND x-a:d != -3]", true},
		{"lone bang", "[a:b ! 'x']", false},
		{"missing operator", "[a:b 'x']", false},
		{"missing colon", "[ab = 'x']", false},
		{"empty", "", false},
		{"deep nesting", strings.Repeat("(", 100) + "[a:b = 'x']" + strings.Repeat(")", 100), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSTIXPattern(tc.pattern)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestSTIXDNFBound(t *testing.T) {
	// (a OR b) AND (c OR d) ... nine times expands to 512 terms.
	var parts []string
	for range 9 {
		parts = append(parts, "(file:name = 'a' OR file:name = 'b')")
	}
	e, err := parseSTIXPattern("[" + strings.Join(parts, " AND ") + "]")
	if err != nil {
		t.Fatal(err)
	}
	obs, _ := e.leaves()
	if _, err := obs[0].dnf(); err == nil || !strings.Contains(err.Error(), "alternatives") {
		t.Fatalf("got %v, want a bound error", err)
	}
}
