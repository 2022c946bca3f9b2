//go:build !linux

package query

import (
	"context"
	"errors"
	"net"
	"time"
)

// LoopSupported says whether this build has the epoll loop.
const LoopSupported = false

// Loop is the epoll query transport, Linux only.
type Loop struct{}

// LoopConfig are the loop's timeouts.
type LoopConfig struct {
	Loops                                  int
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// NewLoop reports that the epoll loop needs Linux.
func (h *Server) NewLoop(ln *Listener, cfg LoopConfig) (*Loop, error) {
	return nil, errors.New("-query-loop=epoll needs Linux (epoll); use -query-loop=fasthttp")
}

// Fallback is never reached.
func (l *Loop) Fallback() net.Listener { return nil }

// Serve is never reached.
func (l *Loop) Serve() error { return errors.New("no epoll loop on this system") }

// Shutdown is never reached.
func (l *Loop) Shutdown(context.Context) error { return nil }
