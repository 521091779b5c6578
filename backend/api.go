package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// DefaultSizes are the values `size` accepts unless configured otherwise:
// the seed's two.
var DefaultSizes = []string{"512x512", "1024x1024"}

// Limits bound what a request may ask for.
type Limits struct {
	// MaxImages caps number×batch.
	MaxImages int
	// Sizes are the accepted `size` values ("WxH"), parsed by ParseSizes.
	Sizes map[string][2]int
}

// DefaultLimits are the limits of a default Config.
func DefaultLimits() Limits {
	s, _ := ParseSizes(DefaultSizes)
	return Limits{MaxImages: DefaultMaxImages, Sizes: s}
}

// ParseSizes parses "WxH" sizes; W and H must be multiples of 8 in 64..2048.
func ParseSizes(list []string) (map[string][2]int, error) {
	out := map[string][2]int{}
	for _, s := range list {
		var w, h int
		var rest string
		n, _ := fmt.Sscanf(s, "%dx%d%s", &w, &h, &rest)
		if n != 2 || fmt.Sprintf("%dx%d", w, h) != s || w%8 != 0 || h%8 != 0 || w < 64 || h < 64 || w > 2048 || h > 2048 {
			return nil, fmt.Errorf("%w: size %q must be WxH with W and H multiples of 8 in 64..2048", ErrConfig, s)
		}
		out[s] = [2]int{w, h}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no sizes", ErrConfig)
	}
	return out, nil
}

// Response formats.
const (
	FormatURL     = "url"
	FormatB64JSON = "b64_json"
)

// Request is a validated generation request (both endpoints map to it).
type Request struct {
	Prompt        string
	Number        int // runs
	Batch         int // images per run (one forward pass)
	Steps         int
	Size          string
	Width, Height int
	// Seed of run 0; run n uses Seed+n. SeedSet is false when the client
	// sent none (then Seed was drawn at random and is echoed back).
	Seed           int64
	SeedSet        bool
	ResponseFormat string
	Async          bool
}

// Images is the number of images the request produces.
func (r Request) Images() int { return r.Number * r.Batch }

// wireRequest is the JSON body of POST /api/text2image. Pointers tell an
// absent (or null) field from a zero one. Unknown fields are ignored.
type wireRequest struct {
	Prompt         *string `json:"prompt"`
	Number         *int    `json:"number"`
	Size           *string `json:"size"`
	Step           *int    `json:"step"`
	Batch          *int    `json:"batch"`
	Seed           *int64  `json:"seed"`
	ResponseFormat *string `json:"response_format"`
	Async          *bool   `json:"async"`
}

// openAIRequest is the JSON body of POST /v1/images/generations.
type openAIRequest struct {
	Prompt         *string `json:"prompt"`
	N              *int    `json:"n"`
	Size           *string `json:"size"`
	ResponseFormat *string `json:"response_format"`
	Seed           *int64  `json:"seed"`
	Step           *int    `json:"step"`
}

// decodeObject decodes body, which must be exactly one JSON object, into v.
func decodeObject(body []byte, v any) *APIError {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return badRequest(CodeInvalidJSON, "request body is empty; send a JSON object such as {\"prompt\": \"...\"}")
	}
	if trimmed[0] != '{' {
		return badRequest(CodeInvalidJSON, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest(CodeInvalidType, "field %q must be %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return badRequest(CodeInvalidJSON, "request body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err == nil || !errors.Is(err, io.EOF) {
		return badRequest(CodeInvalidJSON, "request body has data after the JSON object")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64":
		return "an integer"
	}
	return "of another type"
}

// DecodeRequest parses and validates the body of POST /api/text2image.
// lim bounds number×batch and the sizes. Seeds absent from the body are drawn with
// randSeed. Every failure is an *APIError with status 400.
func DecodeRequest(body []byte, lim Limits, randSeed func() int64) (Request, error) {
	var w wireRequest
	if e := decodeObject(body, &w); e != nil {
		return Request{}, e
	}
	r := Request{Number: 1, Batch: 1, Steps: 4, Size: "512x512", ResponseFormat: FormatURL}
	if w.Prompt != nil {
		r.Prompt = *w.Prompt
	}
	if w.Number != nil {
		r.Number = *w.Number
	}
	if w.Batch != nil {
		r.Batch = *w.Batch
	}
	if w.Step != nil {
		r.Steps = *w.Step
	}
	if w.Size != nil {
		r.Size = *w.Size
	}
	if w.ResponseFormat != nil {
		r.ResponseFormat = *w.ResponseFormat
	}
	if w.Async != nil {
		r.Async = *w.Async
	}
	setSeed(&r, w.Seed, randSeed)
	if err := r.validate(lim); err != nil {
		return Request{}, err
	}
	return r, nil
}

// DecodeOpenAIRequest parses the body of POST /v1/images/generations
// (prompt, n, size, response_format; model and other OpenAI fields are
// ignored; seed and step are our extensions). n images are made as n runs.
func DecodeOpenAIRequest(body []byte, lim Limits, randSeed func() int64) (Request, error) {
	var w openAIRequest
	if e := decodeObject(body, &w); e != nil {
		return Request{}, e
	}
	r := Request{Number: 1, Batch: 1, Steps: 4, Size: "512x512", ResponseFormat: FormatURL}
	if w.Prompt != nil {
		r.Prompt = *w.Prompt
	}
	if w.N != nil {
		r.Number = *w.N
	}
	if w.Size != nil {
		r.Size = *w.Size
	}
	if w.Step != nil {
		r.Steps = *w.Step
	}
	if w.ResponseFormat != nil {
		r.ResponseFormat = *w.ResponseFormat
	}
	setSeed(&r, w.Seed, randSeed)
	if err := r.validate(lim); err != nil {
		if err.Code == CodeInvalidNumber {
			err.Message = strings.Replace(err.Message, "number", "n", 1)
		}
		return Request{}, err
	}
	return r, nil
}

func setSeed(r *Request, seed *int64, randSeed func() int64) {
	if seed != nil {
		r.Seed, r.SeedSet = *seed, true
	} else if randSeed != nil {
		r.Seed = randSeed()
	}
}

func (r *Request) validate(lim Limits) *APIError {
	maxImages := lim.MaxImages
	if strings.TrimSpace(r.Prompt) == "" {
		return badRequest(CodeMissingPrompt, "prompt is required and must not be empty")
	}
	wh, ok := lim.Sizes[r.Size]
	if !ok {
		return badRequest(CodeInvalidSize, "size %q is not supported; use one of %s", truncate(r.Size, 40), sizeList(lim.Sizes))
	}
	r.Width, r.Height = wh[0], wh[1]
	if r.Steps < 1 || r.Steps > MaxSteps {
		return badRequest(CodeInvalidStep, "step must be between 1 and %d, got %d", MaxSteps, r.Steps)
	}
	if r.Number < 1 {
		return badRequest(CodeInvalidNumber, "number must be at least 1, got %d", r.Number)
	}
	if r.Batch < 1 {
		return badRequest(CodeInvalidBatch, "batch must be at least 1, got %d", r.Batch)
	}
	if r.Number > maxImages || r.Batch > maxImages || r.Number*r.Batch > maxImages {
		return badRequest(CodeTooManyImages, "number×batch = %d×%d exceeds the limit of %d images per request", r.Number, r.Batch, maxImages)
	}
	if r.ResponseFormat != FormatURL && r.ResponseFormat != FormatB64JSON {
		return badRequest(CodeInvalidFormat, "response_format must be \"url\" or \"b64_json\", got %q", truncate(r.ResponseFormat, 40))
	}
	return nil
}

// checkEngineLimits refuses a batch the engine cannot make in one pass.
func checkEngineLimits(info EngineInfo, r Request) *APIError {
	if info.MaxBatch > 0 && r.Batch > info.MaxBatch {
		return badRequest(CodeInvalidBatch, "batch %d exceeds the engine's limit of %d images per pass", r.Batch, info.MaxBatch)
	}
	if info.MaxBatchPixels > 0 && r.Batch*r.Width*r.Height > info.MaxBatchPixels {
		return badRequest(CodeInvalidBatch, "batch %d of %s exceeds the engine's limit of %d pixels per pass (at most %d images of this size; use number for more)",
			r.Batch, r.Size, info.MaxBatchPixels, max(1, info.MaxBatchPixels/(r.Width*r.Height)))
	}
	return nil
}

func sizeList(m map[string][2]int) string {
	l := make([]string, 0, len(m))
	for k := range m {
		l = append(l, strconv.Quote(k))
	}
	sort.Strings(l)
	return strings.Join(l, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Response is the body of a successful POST /api/text2image: the seed's
// fields (in the seed's order) plus the additive gridUrl / gridB64Json.
type Response struct {
	AverageImageGenerationTimeSeconds float64  `json:"averageImageGenerationTimeSeconds"`
	GenerationTimeSeconds             float64  `json:"generationTimeSeconds"`
	GridB64JSON                       string   `json:"gridB64Json,omitempty"`
	GridURL                           string   `json:"gridUrl,omitempty"`
	ID                                string   `json:"id"`
	Meta                              Meta     `json:"meta"`
	Output                            []Output `json:"output"`
	Status                            string   `json:"status"`
}

// Meta is the response's "meta" object.
type Meta struct {
	Input MetaInput `json:"input"`
}

// MetaInput echoes the effective inputs (defaults applied).
type MetaInput struct {
	Batch  int    `json:"batch"`
	Model  string `json:"model"`
	Number int    `json:"number"`
	Prompt string `json:"prompt"`
	Seed   int64  `json:"seed"`
	Size   string `json:"size"`
	Step   int    `json:"step"`
}

// Output is one image: its URL (or inline PNG) and the latency of the
// batch that made it.
type Output struct {
	B64JSON        string  `json:"b64_json,omitempty"`
	LatencySeconds float64 `json:"latencySeconds"`
	URL            string  `json:"url,omitempty"`
}

// AsyncStatus is the body of 202 answers and of GET /api/text2image/<id>
// while the job has not finished.
type AsyncStatus struct {
	ID        string   `json:"id"`
	Status    string   `json:"status"` // "queued" | "running"
	Progress  Progress `json:"progress"`
	StatusURL string   `json:"statusUrl"`
}

// Progress counts denoising steps over all runs of a request.
type Progress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// OpenAIResponse is the body of a successful POST /v1/images/generations.
type OpenAIResponse struct {
	Created int64        `json:"created"`
	Data    []OpenAIItem `json:"data"`
}

// OpenAIItem is one image of OpenAIResponse.
type OpenAIItem struct {
	URL     string `json:"url,omitempty"`
	B64JSON string `json:"b64_json,omitempty"`
}
