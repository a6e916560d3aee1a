"""RunFunction latency from a client whose transport is native code (grpcio's C core).

Crossplane calls functions from Go's gRPC; a Node client would add its own HTTP/2 and GC costs
to every figure. This driver sends pre-encoded request bytes (no protobuf work on this side) to
one server and reports each call's wall time. Driven by test/bench/native-client.ts; reads one
JSON job on stdin:

  {"address": "host:port", "requests": ["file", ...], "warmup": 10, "iterations": 100}

Call i sends requests[i % len(requests)]. Prints [ms, ...] (the calls after warmup) on stdout.
One server per process: a client holding channels to two servers measured the second ~2 ms slower
at 1.4 MB requests, its channels sharing the interpreter.
"""
import json
import sys
import time

import grpc

METHOD = "/apiextensions.fn.proto.v1.FunctionRunnerService/RunFunction"
OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def main() -> None:
    job = json.load(sys.stdin)
    channel = grpc.insecure_channel(job["address"], options=OPTIONS)
    call = channel.unary_unary(METHOD)  # bytes in, bytes out: no (de)serializers
    requests = []
    for path in job["requests"]:
        with open(path, "rb") as f:
            requests.append(f.read())
    warmup, iterations = job["warmup"], job["iterations"]
    samples = []
    for i in range(warmup + iterations):
        req = requests[i % len(requests)]
        start = time.perf_counter()
        rsp = call(req, timeout=120)
        elapsed = (time.perf_counter() - start) * 1000
        if not rsp:
            raise SystemExit(f"{job['address']}: empty response")
        if i >= warmup:
            samples.append(elapsed)
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
