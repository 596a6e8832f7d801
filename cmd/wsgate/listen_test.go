package main

import (
	"net"
	"testing"
	"time"
)

// TestLimitListener: at most n connections are accepted at a time; a
// closed one gives its place back, once however often it is closed.
func TestLimitListener(t *testing.T) {
	ln, err := limitListen("127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := <-accepted
	<-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted with a limit of 2")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	first.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	select {
	case <-accepted:
		t.Fatal("a double Close gave back two places")
	case <-time.After(200 * time.Millisecond):
	}
}
