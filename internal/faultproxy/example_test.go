package faultproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"

	"github.com/statesync-go/statesync/internal/faultproxy"
)

// A client connected through the proxy loses its connection at Cut, and
// connects again.
func Example() {
	// An echo server stands for PostgreSQL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()

	p, err := faultproxy.New(ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr()) // the client dials the proxy
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(line)

	p.Cut()
	_, err = c.Read(make([]byte, 1))
	fmt.Println("after Cut:", err)
	// Output:
	// hello
	// after Cut: EOF
}
