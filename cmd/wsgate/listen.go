package main

import (
	"net"
	"sync"
)

// Connections the HTTP listeners hold at most. The engine leaves
// loop.Options.FDReserve descriptors (256 by default) for everything
// outside it; these two bound their share of it, so that no number of
// admin or API clients can take the process to its descriptor limit.
const (
	maxAdminConns = 32
	maxAPIConns   = 128
)

// limitListener accepts at most n connections at a time: Accept waits
// while n are open.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func limitListen(addr string, n int) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, n)}, nil
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

// limitConn gives its place back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
