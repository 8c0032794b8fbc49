// go_tls.go: Go crypto/tls peer for bench/tls-bench.sh. -mode echo: a
// goroutine per connection, io.Copy back; -mode http: net/http over TLS
// serving /hello and /16k. Run with GOMAXPROCS=1. Exits on SIGTERM.
package main

import (
	"crypto/tls"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cert := flag.String("cert", "", "certificate (PEM)")
	key := flag.String("key", "", "key (PEM)")
	mode := flag.String("mode", "echo", "echo or http")
	flag.Parse()
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{pair},
		MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", ln.Addr())
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		os.Exit(0)
	}()
	if *mode == "http" {
		big := strings.Repeat("x", 16384)
		mux := http.NewServeMux()
		mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello\n")
		})
		mux.HandleFunc("/16k", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "16384")
			io.WriteString(w, big)
		})
		srv := &http.Server{Handler: mux, TLSConfig: conf,
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		log.Fatal(srv.ServeTLS(ln, "", ""))
	}
	tl := tls.NewListener(ln, conf)
	for {
		c, err := tl.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			io.Copy(c, c)
		}(c)
	}
}
