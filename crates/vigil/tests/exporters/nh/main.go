// A tiny exporter for vigil's native-histogram scrape test (crates/vigil/tests/native_histograms.rs):
// one histogram with both classic buckets and a native representation (bucket factor 1.1),
// observed a fixed handful of times, and one counter, served on 127.0.0.1:<port>/metrics.
// With a second argument "live" it also keeps observing (200 a second, a fixed sequence of
// latencies between 1 ms and about 3 s), for the side-by-side test against Prometheus.
//
// Built offline against Debian's client_golang (GO111MODULE=off, GOPATH=/usr/share/gocode).
package main

import (
	"log"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: nh <port> [live]")
	}
	reg := prometheus.NewRegistry()
	lat := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "nh_latency_seconds",
		Help:                        "Latency of nothing in particular.",
		Buckets:                     []float64{0.1, 1, 2},
		NativeHistogramBucketFactor: 1.1,
	})
	reg.MustRegister(lat)
	for _, v := range []float64{0.01, 0.5, 1, 1.5, 3} {
		lat.Observe(v)
	}
	runs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nh_runs_total",
		Help: "Runs.",
	})
	reg.MustRegister(runs)
	runs.Add(7)
	if len(os.Args) > 2 && os.Args[2] == "live" {
		go func() {
			x := uint64(88172645463325252)
			for range time.Tick(5 * time.Millisecond) {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				// Log-uniform between 1 ms and about 3 s.
				lat.Observe(0.001 * math.Pow(3000, float64(x%10000)/10000))
				runs.Inc()
			}
		}()
	}
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Args[1], nil))
}
