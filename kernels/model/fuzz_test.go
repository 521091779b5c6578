package model

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzComponentConfigs feeds arbitrary JSON as a UNet, VAE and CLIP config:
// decoding and validation never panic, and an accepted config yields specs
// whose shapes are positive and whose parameter count does not overflow.
func FuzzComponentConfigs(f *testing.F) {
	for _, p := range []string{"unet/config.json", "vae/config.json", "text_encoder/config.json", "text_encoder_2/config.json"} {
		for _, root := range []string{"../../../shared/golden/tiny-sdxl/model", "../../../shared/golden/sdxl-turbo-configs"} {
			if b, err := os.ReadFile(filepath.Join(root, p)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(tinyUNetJSON))
	f.Add([]byte(`{"block_out_channels": [1000000000], "layers_per_block": 1000000}`))
	f.Add([]byte(`{"attention_head_dim": [], "transformer_layers_per_block": [[1, 2]]}`))
	f.Add([]byte(`{"num_hidden_layers": 100000000, "hidden_size": -1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSpecs := func(specs []TensorSpec) {
			var total int64
			for _, s := range specs {
				n := int64(1)
				for _, d := range s.Shape {
					if d <= 0 {
						t.Fatalf("%s: shape %v", s.Name, s.Shape)
					}
					n *= d
				}
				if n <= 0 || total+n < total {
					t.Fatalf("%s: element count overflows", s.Name)
				}
				total += n
			}
		}
		var u UNetConfig
		u.setDefaults()
		if json.Unmarshal(b, &u) == nil {
			if err := u.validate(); err == nil {
				checkSpecs(u.Spec())
			} else if !errors.Is(err, ErrConfig) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("untyped error %v", err)
			}
		}
		var v VAEConfig
		v.setDefaults()
		if json.Unmarshal(b, &v) == nil && v.validate() == nil {
			checkSpecs(v.DecoderSpec())
			checkSpecs(v.EncoderSpec())
		}
		var c CLIPTextConfig
		c.setDefaults()
		if json.Unmarshal(b, &c) == nil && c.validate() == nil {
			c.WithProjection = true
			checkSpecs(c.Spec(""))
		}
	})
}
