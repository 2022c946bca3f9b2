package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// listenRESP listens on -resp-addr: host:port (TCP), or unix:PATH, a Unix
// socket, which costs the proxy less kernel time per query than TCP over
// the loopback. A socket file left by a tollgate that died is replaced; one
// a live process answers on is not. The socket is made reachable by every
// local user (mode 0666), as a loopback port is: restrict it with the
// permissions of its directory. It is removed when the listener closes.
func listenRESP(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		if addr == "" {
			return nil, errors.New("empty address")
		}
		return net.Listen("tcp", addr)
	}
	if path == "" {
		return nil, errors.New("unix: needs a path")
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
