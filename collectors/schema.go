package collectors

// The record schema: the fields each record kind carries. Live collectors
// and log ingestion both fill these names, so that matching, queries and
// timelines treat a process seen in the process table and one read from a
// Sysmon export alike. Types are those allowed in tasks.Record.Fields:
// string, int64, float64, bool, []string. Times inside Fields are RFC 3339
// strings in UTC; the record's own Time is the event time.
//
// process (tasks.KindProcess)
//
//	pid, ppid int64; name, exe, cmdline, user, cwd string;
//	started string (RFC 3339); exe_sha256 string (lower-case hex);
//	exe_deleted bool (exe then holds the path without " (deleted)");
//	parent_name, parent_exe string (when known); process_key string
//	("pid@start-unix-ms": a process is identified by pid and start time)
//
// connection (tasks.KindConnection)
//
//	protocol string (tcp, tcp6, udp, udp6); local_address string;
//	local_port int64; remote_address string; remote_port int64;
//	state string (LISTEN, ESTABLISHED, ...); pid int64; process_name,
//	process_exe string
//
// file (tasks.KindFile)
//
//	path, name string; size int64; mode string ("-rwxr-xr-x"); uid, gid
//	int64; owner string; mtime, ctime, atime string; md5, sha1, sha256
//	string; file_type string (elf, pe, script, json, text, data, ...);
//	yara []string (matching rule names); process_exe string (when a log
//	says which process wrote it)
//
// persistence (tasks.KindPersistence)
//
//	type string (rc.local, init.d, cron, at, systemd-unit, systemd-timer,
//	ld.so.preload, authorized_keys, shell-profile); path, name, owner
//	string; mtime string; sha256 string; content string (first 4 KiB);
//	command string (what it starts, where the format says); user string
//
// account (tasks.KindAccount)
//
//	user string; uid, gid int64; home, shell string; uid0 bool;
//	sudo []string (sudoers lines granting the user, "file: line");
//	groups []string; last_login string; last_login_from string
//
// system (tasks.KindSystem)
//
//	hostname, os, platform, platform_version, kernel, arch string;
//	boot_time string; interfaces []string; addresses []string; labels
//	[]string ("key=value")
//
// auth (tasks.KindAuth)
//
//	event string (accepted, failed, invalid-user, sudo, useradd, session);
//	user, method, source_address string; source_port int64; program
//	string; pid int64; command string (sudo); message string
//
// log (tasks.KindLog)
//
//	message, program, facility, priority string; pid int64; unit string
//
// cloud-activity (tasks.KindCloudActivity)
//
//	operation, category, status, caller, caller_address, subscription,
//	resource_group, resource, resource_type, location, correlation_id,
//	message string
//
// flow (tasks.KindFlow)
//
//	protocol, src_address, dst_address, action, rule string; src_port,
//	dst_port, bytes_out, bytes_in int64
//
// alert (tasks.KindAlert)
//
//	source, title, severity, category, user, message string; event_id,
//	pid int64; exe, cmdline, remote_address string; remote_port int64
//
// memory (tasks.KindMemory)
//
//	pid int64; process_name string; rule string; address int64 (region
//	start); offset int64; region_size int64
//
// blob (tasks.KindBlob)
//
//	blob_sha256 string; size int64; what string (memdump, file-fetch);
//	path string; pid int64; md5, sha1, sha256 string (of a fetched file);
//	map []string (memdump regions, "start-end perms path")
//
// Every kind may also carry: message string (a one-line description for
// timelines) and event_id int64 with provider string when ingested from a
// log that numbers its events.
