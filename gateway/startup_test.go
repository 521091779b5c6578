package gateway_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tdxl/tdxl/attest"
	"github.com/tdxl/tdxl/gateway"
)

// While the gateway measures (a large model), /healthz answers and /readyz,
// the evidence and the proxy say 503; a stop during start-up is clean; a
// failed measurement stops Run with an error.
func TestStartupPhases(t *testing.T) {
	be := newFakeBackend(t)
	release := make(chan struct{})
	for _, tc := range []struct {
		name    string
		measure func(ctx context.Context) (gateway.Runtime, error)
		stop    bool
		wantErr bool
	}{
		{"stopped while measuring", func(ctx context.Context) (gateway.Runtime, error) {
			select {
			case <-ctx.Done():
				return gateway.Runtime{}, ctx.Err()
			case <-release:
				return gateway.Runtime{}, nil
			}
		}, true, false},
		{"measurement fails", func(ctx context.Context) (gateway.Runtime, error) {
			time.Sleep(200 * time.Millisecond)
			return gateway.Runtime{}, errors.New("model folder unreadable")
		}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g, err := gateway.New(gateway.Config{Listener: ln, Backend: be.URL, Issuer: &quoteIssuer{tee: attest.TEETDX},
				Measure: tc.measure, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx) }()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test
			base := "https://" + ln.Addr().String()
			if tc.stop {
				// Healthy but not ready while measuring.
				for path, want := range map[string]int{"/healthz": 200, "/readyz": 503, gateway.EvidencePath: 503, "/echo": 503} {
					resp, err := c.Get(base + path)
					if err != nil {
						t.Fatalf("%s while measuring: %v", path, err)
					}
					resp.Body.Close()
					if resp.StatusCode != want {
						t.Fatalf("%s while measuring: %d, want %d", path, resp.StatusCode, want)
					}
				}
				if g.Ready() {
					t.Fatal("ready while measuring")
				}
				cancel()
			}
			select {
			case err := <-done:
				if (err != nil) != tc.wantErr {
					t.Fatalf("Run: %v, want error %v", err, tc.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
		})
	}
}
