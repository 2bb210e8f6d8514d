package alert_test

import (
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// mailbox is a minimal SMTP server on 127.0.0.1 (RFC 5321's commands a
// client sending one message uses), for tests: what it receives is
// really received over TCP, as from any mail server.
type mailbox struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []mail
}

type mail struct {
	from string
	to   []string
	data string
}

func newMailbox(t *testing.T) *mailbox {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mailbox{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go m.serve(c)
		}
	}()
	return m
}

func (m *mailbox) addr() string { return m.ln.Addr().String() }

func (m *mailbox) received() []mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail(nil), m.msgs...)
}

func (m *mailbox) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	tp.PrintfLine("220 mailbox.test ESMTP")
	var cur mail
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO", "HELO":
			tp.PrintfLine("250 mailbox.test")
		case "MAIL":
			cur = mail{from: strings.TrimSuffix(strings.TrimPrefix(line[len("MAIL FROM:"):], "<"), ">")}
			tp.PrintfLine("250 ok")
		case "RCPT":
			cur.to = append(cur.to, strings.TrimSuffix(strings.TrimPrefix(line[len("RCPT TO:"):], "<"), ">"))
			tp.PrintfLine("250 ok")
		case "DATA":
			tp.PrintfLine("354 end with <CRLF>.<CRLF>")
			data, err := readDot(tp)
			if err != nil {
				return
			}
			cur.data = data
			m.mu.Lock()
			m.msgs = append(m.msgs, cur)
			m.mu.Unlock()
			tp.PrintfLine("250 queued")
		case "RSET", "NOOP":
			tp.PrintfLine("250 ok")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("502 unknown command")
		}
	}
}

func readDot(tp *textproto.Conn) (string, error) {
	lines, err := tp.ReadDotLines()
	return strings.Join(lines, "\n"), err
}
