-- wrk's own summary has no p99.9 and is meant for people: this prints one
-- line with every figure bench/reference_workload.py needs (latencies in µs).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "gctuner-bench requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
