package kernels

import (
	"fmt"

	"github.com/tdxl/tdxl/kernels/model"
	"github.com/tdxl/tdxl/kernels/tokenizer"
)

// loadTokenizers loads both CLIP tokenizers of the folder (package tokenizer).
func loadTokenizers(cfg *model.Config) (textTokenizer, textTokenizer, error) {
	t1, err := loadTokenizer(cfg.Tokenizer.Dir)
	if err != nil {
		return nil, nil, err
	}
	t2, err := loadTokenizer(cfg.Tokenizer2.Dir)
	if err != nil {
		return nil, nil, err
	}
	return t1, t2, nil
}

func loadTokenizer(dir string) (textTokenizer, error) {
	t, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("loading tokenizer: %w", err)
	}
	return t, nil
}
