package kernels

import (
	"math"
	"slices"
	"testing"
)

// The golden set covers "trailing" (sdxl-turbo); these check the other spacings against the rules
// of diffusers' EulerAncestralDiscreteScheduler.set_timesteps.
func TestSchedulerSpacings(t *testing.T) {
	base := schedConfig{NumTrain: 1000, BetaStart: 0.00085, BetaEnd: 0.012, Schedule: schedScaledLinear, StepsOffset: 1}
	sigmaAt := func(train []float32, tt float64) float64 { // training sigma at (possibly fractional) timestep
		n := len(train) - 1
		j := int(math.Floor(tt))
		s0 := float64(train[n-1-j])
		if float64(j) == tt {
			return s0
		}
		s1 := float64(train[n-1-(j+1)])
		return s0 + (s1-s0)*(tt-float64(j))
	}
	cases := []struct {
		spacing int
		steps   int
		want    []float32
		leading bool
	}{
		{schedLeading, 4, []float32{751, 501, 251, 1}, true},
		{schedLinspace, 4, []float32{999, 666, 333, 0}, false},
		{schedLinspace, 3, []float32{999, 499.5, 0}, false},
		{schedTrailing, 4, []float32{999, 749, 499, 249}, false},
	}
	for _, c := range cases {
		cfg := base
		cfg.Spacing = c.spacing
		ts, sig, init, _, train, err := schedTablesGo(&cfg, c.steps)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ts, c.want) {
			t.Errorf("spacing %d, %d steps: timesteps %v, want %v", c.spacing, c.steps, ts, c.want)
		}
		mx := float64(0)
		for i, tt := range ts {
			want := sigmaAt(train, float64(tt))
			if math.Abs(float64(sig[i])-want) > 1e-6*want {
				t.Errorf("spacing %d: sigma[%d] = %v, want %v", c.spacing, i, sig[i], want)
			}
			mx = math.Max(mx, float64(sig[i]))
		}
		if sig[len(sig)-1] != 0 {
			t.Errorf("last sigma %v, want 0", sig[len(sig)-1])
		}
		wantInit := mx
		if c.leading {
			wantInit = math.Sqrt(mx*mx + 1)
		}
		if math.Abs(float64(init)-wantInit) > 1e-6*wantInit {
			t.Errorf("spacing %d: init_noise_sigma %v, want %v", c.spacing, init, wantInit)
		}
	}
	cfg := base
	cfg.Spacing = schedTrailing
	for steps := 1; steps <= MaxSteps; steps++ { // e.g. 19 and 38 are where a naive arange loop overshoots
		ts, _, _, _, _, err := schedTablesGo(&cfg, steps)
		if err != nil || len(ts) != steps || ts[0] != 999 {
			t.Errorf("trailing, %d steps: %v %v", steps, ts, err)
		}
	}
	if _, _, _, _, _, err := schedTablesGo(&cfg, 0); err == nil {
		t.Error("0 steps accepted")
	}
	if _, _, _, _, _, err := schedTablesGo(&cfg, 1001); err == nil {
		t.Error("more steps than training timesteps accepted")
	}
}
