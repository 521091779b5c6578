package isa

import (
	"os"
	"testing"
	"time"
)

// BenchmarkISAReport prints the FMA peak and the per-shape report (make bench-isa). A report, not a test.
func BenchmarkISAReport(b *testing.B) {
	for i := 0; i < b.N; i++ {
		res, err := Report(os.Stdout, ReportOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.PeakGFLOPs, "peak-GFLOP/s")
		b.ReportMetric(res.GEMMPctFMAWall, "gemm-%-fma-peak-wall")
		b.ReportMetric(res.GEMMPctFMACPU, "gemm-%-fma-peak-cpu")
		b.ReportMetric(res.GEMMPctBestCPU, "gemm-best-%-own-peak-cpu")
	}
}

// TestReportShort runs the report on a few shapes so that it cannot rot; it asserts only sanity.
func TestReportShort(t *testing.T) {
	res, err := Report(testWriter{t}, ReportOptions{Threads: 2, MinTime: time.Millisecond,
		PeakTime: 50 * time.Millisecond, Short: true})
	if err != nil {
		t.Fatal(err)
	}
	if !(res.PeakGFLOPs > 0) || len(res.Rows) == 0 {
		t.Fatalf("report: peak %v, %d rows", res.PeakGFLOPs, len(res.Rows))
	}
	for _, r := range res.Rows {
		if !(r.GFLOPs > 0) || r.Path == "" {
			t.Errorf("row %+v", r)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
