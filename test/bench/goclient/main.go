// Command goclient calls a composition Function the way Crossplane v2.3.4 does, for the
// benchmarks in test/bench (driven by test/bench/go-client.ts).
//
// What it matches, read from crossplane/crossplane v2.3.4 internal/xfn/function_runner.go
// (PackagedFunctionRunner.getClientConn and RunFunction):
//
//   - grpc.NewClient with only transport credentials, the same default service config
//     (round_robin, waitForReady) and unary interceptors (Prometheus metrics there; none here).
//     No grpc.WithDefaultCallOptions, so grpc-go's default 4 MiB receive limit applies to every
//     RunFunctionResponse, and no window options, so BDP estimation sizes the HTTP/2 windows.
//
//   - One connection per Function, reused for every call.
//
//   - The v1 proto from Crossplane's own module (github.com/crossplane/crossplane/v2/proto/fn/v1),
//     called through fnv1.NewFunctionRunnerServiceClient, so grpc-go marshals the message on
//     every call: Go's map order is random, so, as under Crossplane, no two calls need send the
//     same bytes.
//
//   - Crossplane's versions: google.golang.org/grpc v1.82.1, google.golang.org/protobuf v1.36.11.
//
//   - The per-reconcile deadline of the composite reconciler (2 minutes) as the call deadline.
//
//   - With -tls-certs-dir, Crossplane's mTLS: its client certificate and CA loaded as
//     crossplane-runtime's certificates.LoadMTLSConfig does (TLS 1.2 at least, RootCAs = ca.crt);
//     without it, insecure, for servers that serve plaintext (the Python function's as run here).
//
// What it does not match: the beta fallback (retrying a v1beta1 call on Unimplemented) is left
// out, since the servers measured here implement v1.
//
// Modes:
//
//	goclient call    -target HOST:PORT -requests FILE [-warmup N] [-iterations N] ...
//	goclient serve   -response FILE [-listen 127.0.0.1:0]   (the no-work server: transport floor)
//	goclient marshal -requests FILE -copies K -out FILE      (what Crossplane would put on the wire)
//	goclient certs   -out DIR   (a CA, DIR/server and DIR/client: tls.crt, tls.key, ca.crt each)
//
// FILE holds messages as written by go-client.ts: each a 4-byte big-endian length, then the
// message's protobuf bytes. Results are one JSON object on stdout.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	fnv1 "github.com/crossplane/crossplane/v2/proto/fn/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// svcConfig is Crossplane's, verbatim in meaning: spread calls over the Function's pods and wait
// for a ready connection rather than fail a call made while it starts.
const svcConfig = `{
	"loadBalancingConfig": [{"round_robin": {}}],
	"methodConfig": [{"name": [{}], "waitForReady": true}]
}`

// callDeadline is the composite reconciler's timeout for a whole reconcile.
const callDeadline = 2 * time.Minute

func main() {
	if len(os.Args) < 2 {
		fail("usage: goclient call|serve|marshal [flags]")
	}
	var err error
	switch os.Args[1] {
	case "call":
		err = runCall(os.Args[2:])
	case "serve":
		err = runServe(os.Args[2:])
	case "marshal":
		err = runMarshal(os.Args[2:])
	case "certs":
		err = runCerts(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q (call, serve, marshal, certs)", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "goclient:", msg)
	os.Exit(1)
}

// readFrames reads length-prefixed messages.
func readFrames(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var out [][]byte
	for {
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("%s: truncated message %d: %w", path, len(out), err)
		}
		out = append(out, b)
	}
}

func writeFrames(path string, msgs [][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, m := range msgs {
		if err := binary.Write(w, binary.BigEndian, uint32(len(m))); err != nil {
			return err
		}
		if _, err := w.Write(m); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// readRequests unmarshals every request once, as Crossplane holds a built Go message per call.
func readRequests(path string) ([]*fnv1.RunFunctionRequest, error) {
	frames, err := readFrames(path)
	if err != nil {
		return nil, err
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("%s: no requests", path)
	}
	reqs := make([]*fnv1.RunFunctionRequest, len(frames))
	for i, b := range frames {
		reqs[i] = &fnv1.RunFunctionRequest{}
		if err := proto.Unmarshal(b, reqs[i]); err != nil {
			return nil, fmt.Errorf("%s: request %d: %w", path, i, err)
		}
	}
	return reqs, nil
}

type latency struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	Mean float64 `json:"mean"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
	Sum  float64 `json:"sum"`
}

type errorCount struct {
	Code    string `json:"code"`
	Count   int    `json:"count"`
	Message string `json:"message"`
}

type callResult struct {
	Target        string       `json:"target"`
	Calls         int          `json:"calls"`
	OK            int          `json:"ok"`
	Concurrency   int          `json:"concurrency"`
	RequestBytes  []int        `json:"requestBytes"`
	ResponseBytes []int        `json:"responseBytes"`
	LatencyMs     *latency     `json:"latencyMs"`
	WallMs        float64      `json:"wallMs"`
	Samples       []float64    `json:"samples,omitempty"`
	Errors        []errorCount `json:"errors"`
}

// percentile is the nearest-rank percentile of sorted samples (test/bench/stats.ts's rule).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.9999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

func summarize(samples []float64) *latency {
	if len(samples) == 0 {
		return nil
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return &latency{
		P50: percentile(s, 50), P99: percentile(s, 99), Mean: sum / float64(len(s)),
		Min: s[0], Max: s[len(s)-1], Sum: sum,
	}
}

func runCall(args []string) error {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	target := fs.String("target", "", "HOST:PORT of the Function")
	reqPath := fs.String("requests", "", "length-prefixed RunFunctionRequests; call i sends [i % count]")
	warmup := fs.Int("warmup", 5, "calls made before the measured ones")
	iterations := fs.Int("iterations", 100, "measured calls")
	concurrency := fs.Int("concurrency", 1, "calls in flight at once on the one connection")
	maxErrors := fs.Int("max-errors", 5, "stop after this many failed calls")
	samples := fs.Bool("samples", false, "include every measured call's latency")
	saveResponses := fs.String("save-responses", "", "write the response to each distinct request here (length-prefixed)")
	certsDir := fs.String("tls-certs-dir", "", "mTLS as Crossplane: tls.crt, tls.key and ca.crt here (default: insecure)")
	_ = fs.Parse(args)
	if *target == "" || *reqPath == "" {
		return errors.New("call needs -target and -requests")
	}
	reqs, err := readRequests(*reqPath)
	if err != nil {
		return err
	}
	creds := insecure.NewCredentials()
	if *certsDir != "" {
		cfg, err := loadMTLS(*certsDir, false)
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(*target,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(svcConfig))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := fnv1.NewFunctionRunnerServiceClient(conn)

	res := callResult{Target: *target, Concurrency: *concurrency, Errors: []errorCount{}}
	for _, r := range reqs {
		res.RequestBytes = append(res.RequestBytes, proto.Size(r))
	}
	responses := make([]*fnv1.RunFunctionResponse, len(reqs))
	var mu sync.Mutex
	errs := map[string]*errorCount{}
	nErrors := 0
	var measured []float64

	call := func(i int) (time.Duration, *fnv1.RunFunctionResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		defer cancel()
		start := time.Now()
		rsp, err := client.RunFunction(ctx, reqs[i%len(reqs)])
		return time.Since(start), rsp, err
	}
	record := func(i int, d time.Duration, rsp *fnv1.RunFunctionResponse, err error, counted bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			st := status.Convert(err)
			code := st.Code().String()
			e := errs[code]
			if e == nil {
				e = &errorCount{Code: code, Message: st.Message()}
				errs[code] = e
			}
			e.Count++
			nErrors++
			return nErrors < *maxErrors
		}
		if responses[i%len(reqs)] == nil {
			responses[i%len(reqs)] = rsp
		}
		if counted {
			res.OK++
			measured = append(measured, float64(d.Microseconds())/1000)
		}
		return true
	}

	for i := 0; i < *warmup; i++ {
		d, rsp, err := call(i)
		if !record(i, d, rsp, err, false) {
			break
		}
	}
	next := make(chan int)
	stop := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wallStart := time.Now()
	for w := 0; w < max(1, *concurrency); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d, rsp, err := call(*warmup + i)
				mu.Lock()
				res.Calls++
				mu.Unlock()
				if !record(*warmup+i, d, rsp, err, true) {
					once.Do(func() { close(stop) })
				}
			}
		}()
	}
feed:
	for i := 0; i < *iterations; i++ {
		select {
		case next <- i:
		case <-stop:
			break feed
		}
	}
	close(next)
	wg.Wait()
	res.WallMs = float64(time.Since(wallStart).Microseconds()) / 1000

	for _, rsp := range responses {
		if rsp == nil {
			res.ResponseBytes = append(res.ResponseBytes, -1)
		} else {
			res.ResponseBytes = append(res.ResponseBytes, proto.Size(rsp))
		}
	}
	res.LatencyMs = summarize(measured)
	if *samples {
		res.Samples = measured
	}
	for _, e := range errs {
		res.Errors = append(res.Errors, *e)
	}
	sort.Slice(res.Errors, func(a, b int) bool { return res.Errors[a].Code < res.Errors[b].Code })
	if *saveResponses != "" {
		frames := make([][]byte, len(responses))
		for i, rsp := range responses {
			if rsp == nil {
				continue
			}
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rsp)
			if err != nil {
				return err
			}
			frames[i] = b
		}
		if err := writeFrames(*saveResponses, frames); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// rawCodec hands the server the wire bytes as they came and sends fixed bytes back: the no-work
// server costs the transport and nothing else.
type rawCodec struct{}

type rawMessage struct{ b []byte }

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*rawMessage).b, nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	v.(*rawMessage).b = data
	return nil
}
func (rawCodec) Name() string { return "proto" }

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	rspPath := fs.String("response", "", "a file holding one length-prefixed RunFunctionResponse to answer every call with")
	listen := fs.String("listen", "127.0.0.1:0", "address (loopback only)")
	certsDir := fs.String("tls-certs-dir", "", "serve mTLS with tls.crt, tls.key and ca.crt here (default: insecure)")
	_ = fs.Parse(args)
	frames, err := readFrames(*rspPath)
	if err != nil {
		return err
	}
	if len(frames) != 1 {
		return fmt.Errorf("%s: want one response, got %d", *rspPath, len(frames))
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %s: benchmarks listen on loopback only", *listen)
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fixed := &rawMessage{b: frames[0]}
	// Raised like the Function's own server: requests larger than 4 MiB are what is measured.
	opts := []grpc.ServerOption{grpc.ForceServerCodec(rawCodec{}), grpc.MaxRecvMsgSize(1 << 30)}
	if *certsDir != "" {
		cfg, err := loadMTLS(*certsDir, true)
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "apiextensions.fn.proto.v1.FunctionRunnerService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "RunFunction",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in rawMessage
				if err := dec(&in); err != nil {
					return nil, err
				}
				return fixed, nil
			},
		}},
	}, nil)
	fmt.Printf("{\"listening\":%q}\n", lis.Addr().String())
	// Stop when the parent closes stdin or signals: never outlive the benchmark.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		srv.Stop()
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Stop()
	}()
	return srv.Serve(lis)
}

type marshalResult struct {
	Requests []marshalStats `json:"requests"`
}

type marshalStats struct {
	Bytes int `json:"bytes"`
	// Copies is how many marshals were made; Distinct how many different byte strings they gave.
	Copies      int     `json:"copies"`
	Distinct    int     `json:"distinct"`
	MarshalMs   float64 `json:"marshalMs"`
	UnmarshalMs float64 `json:"unmarshalMs"`
}

func runMarshal(args []string) error {
	fs := flag.NewFlagSet("marshal", flag.ExitOnError)
	reqPath := fs.String("requests", "", "length-prefixed RunFunctionRequests")
	copies := fs.Int("copies", 4, "marshals per request")
	out := fs.String("out", "", "write the marshals here, request by request (length-prefixed)")
	_ = fs.Parse(args)
	reqs, err := readRequests(*reqPath)
	if err != nil {
		return err
	}
	var frames [][]byte
	var res marshalResult
	for _, r := range reqs {
		seen := map[[32]byte]bool{}
		var marshal, unmarshal []float64
		for c := 0; c < *copies; c++ {
			start := time.Now()
			b, err := proto.Marshal(r)
			marshal = append(marshal, float64(time.Since(start).Microseconds())/1000)
			if err != nil {
				return err
			}
			start = time.Now()
			if err := proto.Unmarshal(b, &fnv1.RunFunctionRequest{}); err != nil {
				return err
			}
			unmarshal = append(unmarshal, float64(time.Since(start).Microseconds())/1000)
			seen[sha256.Sum256(b)] = true
			frames = append(frames, b)
		}
		res.Requests = append(res.Requests, marshalStats{
			Bytes: proto.Size(r), Copies: *copies, Distinct: len(seen),
			MarshalMs: summarize(marshal).P50, UnmarshalMs: summarize(unmarshal).P50,
		})
	}
	if *out != "" {
		if err := writeFrames(*out, frames); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
