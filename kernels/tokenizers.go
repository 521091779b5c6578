package kernels

import (
	"errors"

	"github.com/tdxl/tdxl/kernels/model"
)

// loadTokenizers loads both CLIP tokenizers of the folder.
// TODO(A): switch to package kernels/tokenizer (engineer B) as soon as it lands; until then Open
// fails with this error rather than tokenizing wrongly.
func loadTokenizers(cfg *model.Config) (textTokenizer, textTokenizer, error) {
	return nil, nil, errors.New("tokenizers: package kernels/tokenizer not available yet")
}

func loadTokenizer(dir string) (textTokenizer, error) {
	return nil, errors.New("tokenizer: package kernels/tokenizer not available yet")
}
