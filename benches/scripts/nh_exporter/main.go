// A load generator for the native-histogram storage measurement (benches/scripts/nh_density.sh):
// N native histograms (client_golang, bucket factor 1.1, no classic buckets), labelled
// model="m<i>", each observing a log-normal latency 20 times a second with its own median,
// so every scrape sees every histogram change. Deterministic (fixed seeds).
//
// Built offline against Debian's client_golang (GO111MODULE=off, GOPATH=/usr/share/gocode).
package main

import (
	"fmt"
	"log"
	"math"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: nh_exporter <port> <histograms>")
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 1 {
		log.Fatal("histograms must be a positive number")
	}
	reg := prometheus.NewRegistry()
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                        "inference_latency_seconds",
		Help:                        "Model inference latency.",
		NativeHistogramBucketFactor: 1.1,
	}, []string{"model"})
	reg.MustRegister(vec)
	hs := make([]prometheus.Observer, n)
	for i := range hs {
		hs[i] = vec.WithLabelValues(fmt.Sprintf("m%d", i))
	}
	go func() {
		r := rand.New(rand.NewSource(1))
		for range time.Tick(50 * time.Millisecond) {
			for i, h := range hs {
				median := 0.02 * (1 + float64(i%10))
				h.Observe(median * math.Exp(0.5*r.NormFloat64()))
			}
		}
	}()
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Args[1], nil))
}
