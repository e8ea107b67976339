// Command standin is a harmless stand-in for a cryptominer, for demos and
// tests. Built under the name "miner" it dials a pool address taken from a
// miner-like command line and holds the connection open; built as "pool"
// with -listen it accepts such connections. It mines nothing and sends
// nothing but a fake login line.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "act as the pool: accept connections on this address")
	url := flag.String("url", "", "pool URL, stratum+tcp://HOST:PORT")
	_ = flag.Int("donate-level", 1, "ignored; makes the command line look like a miner's")
	_ = flag.Int("cpu-max-threads-hint", 50, "ignored; makes the command line look like a miner's")
	_ = flag.String("a", "rx/0", "ignored; makes the command line look like a miner's")
	flag.Parse()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)

	var err error
	if *listen != "" {
		err = pool(*listen, stop)
	} else {
		err = miner(*url, stop)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
}

// pool accepts connections and holds them until stopped.
func pool(addr string, stop <-chan os.Signal) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
				}
			}()
		}
	}()
	<-stop
	return lis.Close()
}

// miner dials the pool (retrying until it is up) and holds the connection.
func miner(url string, stop <-chan os.Signal) error {
	addr, ok := strings.CutPrefix(url, "stratum+tcp://")
	if !ok {
		return fmt.Errorf("--url %q: want stratum+tcp://HOST:PORT", url)
	}
	var conn net.Conn
	for {
		var err error
		conn, err = net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			break
		}
		select {
		case <-stop:
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	defer conn.Close()
	fmt.Fprintln(conn, `{"id":1,"method":"login","params":{"login":"standin","agent":"standin/0"}}`)
	<-stop
	return nil
}
