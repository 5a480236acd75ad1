package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// redisConn is a minimal RESP2 client: enough to read every key of a test's
// private redis-server without a client library.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

// dialRedis connects to addr; the caller closes the connection.
func dialRedis(t *testing.T, addr string) *redisConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	return &redisConn{c: c, r: bufio.NewReader(c)}
}

func (rc *redisConn) Close() error { return rc.c.Close() }

// do sends one command and returns its reply: a string, an int64, nil, or a
// []any of those. A Redis error reply is an error.
func (rc *redisConn) do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := rc.c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(rc.c, b.String()); err != nil {
		return nil, err
	}
	return rc.reply()
}

func (rc *redisConn) reply() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch body := line[1:]; line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, errors.New(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = rc.reply(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected RESP line %q", line)
}

// redisDump returns every key of the redis-server at addr with its type and
// value, written so that two dumps compare equal exactly when no key was
// added, removed or changed (hash fields and set members sorted).
func redisDump(t *testing.T, addr string) map[string]string {
	t.Helper()
	rc := dialRedis(t, addr)
	defer rc.Close()
	must := func(args ...string) any {
		v, err := rc.do(args...)
		require.NoError(t, err, "redis %v", args)
		return v
	}
	out := map[string]string{}
	keys, _ := must("KEYS", "*").([]any)
	for _, k := range keys {
		key := k.(string)
		typ := must("TYPE", key).(string)
		var val any
		switch typ {
		case "string":
			val = must("GET", key)
		case "hash":
			flat, _ := must("HGETALL", key).([]any)
			var fields []string
			for i := 0; i+1 < len(flat); i += 2 {
				fields = append(fields, fmt.Sprintf("%s=%q", flat[i], flat[i+1]))
			}
			slices.Sort(fields)
			val = fields
		case "stream":
			val = must("XRANGE", key, "-", "+")
		case "list":
			val = must("LRANGE", key, "0", "-1")
		case "set":
			members, _ := must("SMEMBERS", key).([]any)
			slices.SortFunc(members, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
			val = members
		case "zset":
			val = must("ZRANGE", key, "0", "-1", "WITHSCORES")
		case "none":
			continue // deleted since KEYS
		}
		out[key] = fmt.Sprintf("%s %q", typ, val)
	}
	return out
}

// redisHashField reads one field of a hash (Dapr's Redis state store keeps a
// value in the field "data" of the hash <app-id>||<key>).
func redisHashField(t *testing.T, addr, key, field string) (string, bool) {
	t.Helper()
	rc := dialRedis(t, addr)
	defer rc.Close()
	v, err := rc.do("HGET", key, field)
	require.NoError(t, err)
	s, ok := v.(string)
	return s, ok
}
