package model

import "fmt"

// SchedulerConfig is an EulerAncestralDiscreteScheduler config
// (scheduler/scheduler_config.json). Defaults are diffusers 0.26's.
type SchedulerConfig struct {
	ClassName           string    `json:"_class_name"`
	NumTrainTimesteps   int       `json:"num_train_timesteps"`    // default 1000
	BetaStart           float64   `json:"beta_start"`             // default 0.0001
	BetaEnd             float64   `json:"beta_end"`               // default 0.02
	BetaSchedule        string    `json:"beta_schedule"`          // "linear" (default), "scaled_linear", "squaredcos_cap_v2"
	TrainedBetas        []float64 `json:"trained_betas"`          // default null; overrides the schedule when set
	PredictionType      string    `json:"prediction_type"`        // "epsilon" (default), "v_prediction"
	TimestepSpacing     string    `json:"timestep_spacing"`       // "linspace" (default), "leading", "trailing"
	StepsOffset         int       `json:"steps_offset"`           // default 0
	RescaleBetasZeroSNR bool      `json:"rescale_betas_zero_snr"` // default false
}

func (c *SchedulerConfig) setDefaults() {
	*c = SchedulerConfig{
		NumTrainTimesteps: 1000, BetaStart: 0.0001, BetaEnd: 0.02, BetaSchedule: "linear",
		PredictionType: "epsilon", TimestepSpacing: "linspace",
	}
}

func (c *SchedulerConfig) validate() error {
	if c.ClassName != "EulerAncestralDiscreteScheduler" {
		return fmt.Errorf("%w: scheduler _class_name %q (want EulerAncestralDiscreteScheduler)", ErrUnsupported, c.ClassName)
	}
	if c.NumTrainTimesteps <= 0 {
		return fmt.Errorf("%w: num_train_timesteps %d", ErrConfig, c.NumTrainTimesteps)
	}
	if c.TrainedBetas != nil && len(c.TrainedBetas) != c.NumTrainTimesteps {
		return fmt.Errorf("%w: trained_betas has %d entries, want %d", ErrConfig, len(c.TrainedBetas), c.NumTrainTimesteps)
	}
	switch c.BetaSchedule {
	case "linear", "scaled_linear", "squaredcos_cap_v2":
	default:
		return fmt.Errorf("%w: beta_schedule %q", ErrUnsupported, c.BetaSchedule)
	}
	switch c.PredictionType {
	case "epsilon", "v_prediction":
	default:
		return fmt.Errorf("%w: prediction_type %q", ErrUnsupported, c.PredictionType)
	}
	switch c.TimestepSpacing {
	case "linspace", "leading", "trailing":
	default:
		return fmt.Errorf("%w: timestep_spacing %q", ErrUnsupported, c.TimestepSpacing)
	}
	if !(c.BetaStart > 0 && c.BetaEnd > c.BetaStart && c.BetaEnd < 1) && c.TrainedBetas == nil {
		return fmt.Errorf("%w: beta_start %g / beta_end %g", ErrConfig, c.BetaStart, c.BetaEnd)
	}
	return nil
}
