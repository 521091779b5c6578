package backend

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const pandaPrompt = "A panda listening to music with headphones. highly detailed, 8k."

func fixedSeed() int64 { return 42 }

func TestDecodeRequestDefaults(t *testing.T) {
	r, err := DecodeRequest([]byte(`{"prompt": "`+pandaPrompt+`", "number": 1}`), DefaultLimits(), fixedSeed)
	require.NoError(t, err)
	assert.Equal(t, Request{Prompt: pandaPrompt, Number: 1, Batch: 1, Steps: 4, Size: "512x512",
		Width: 512, Height: 512, Seed: 42, ResponseFormat: FormatURL}, r)

	r, err = DecodeRequest([]byte(` {"prompt":"p","number":2,"size":"1024x1024","step":2,"batch":3,"seed":-7,
		"response_format":"b64_json","async":true,"unknown":{"x":[1,2]},"negative_prompt":"ignored"} `), DefaultLimits(), fixedSeed)
	require.NoError(t, err)
	assert.Equal(t, Request{Prompt: "p", Number: 2, Batch: 3, Steps: 2, Size: "1024x1024", Width: 1024, Height: 1024,
		Seed: -7, SeedSet: true, ResponseFormat: FormatB64JSON, Async: true}, r)

	// null means absent
	r, err = DecodeRequest([]byte(`{"prompt":"p","number":null,"seed":null}`), DefaultLimits(), fixedSeed)
	require.NoError(t, err)
	assert.Equal(t, 1, r.Number)
	assert.False(t, r.SeedSet)
}

func TestDecodeRequestErrors(t *testing.T) {
	cases := []struct{ name, body, code string }{
		{"empty body", ``, CodeInvalidJSON},
		{"not json", `prompt=panda&number=1`, CodeInvalidJSON},
		{"array", `[{"prompt":"p"}]`, CodeInvalidJSON},
		{"string", `"p"`, CodeInvalidJSON},
		{"truncated", `{"prompt":"p"`, CodeInvalidJSON},
		{"trailing data", `{"prompt":"p"} {"prompt":"q"}`, CodeInvalidJSON},
		{"trailing garbage", `{"prompt":"p"}x`, CodeInvalidJSON},
		{"missing prompt", `{"number":1}`, CodeMissingPrompt},
		{"empty prompt", `{"prompt":""}`, CodeMissingPrompt},
		{"blank prompt", `{"prompt":"  \n\t"}`, CodeMissingPrompt},
		{"null prompt", `{"prompt":null}`, CodeMissingPrompt},
		{"prompt number", `{"prompt":5}`, CodeInvalidType},
		{"number string", `{"prompt":"p","number":"1"}`, CodeInvalidType},
		{"number float", `{"prompt":"p","number":1.5}`, CodeInvalidType},
		{"number huge", `{"prompt":"p","number":1e30}`, CodeInvalidType},
		{"batch bool", `{"prompt":"p","batch":true}`, CodeInvalidType},
		{"step string", `{"prompt":"p","step":"4"}`, CodeInvalidType},
		{"size number", `{"prompt":"p","size":512}`, CodeInvalidType},
		{"seed string", `{"prompt":"p","seed":"1"}`, CodeInvalidType},
		{"seed overflow", `{"prompt":"p","seed":9223372036854775808}`, CodeInvalidType},
		{"async string", `{"prompt":"p","async":"yes"}`, CodeInvalidType},
		{"bad size", `{"prompt":"p","size":"256x256"}`, CodeInvalidSize},
		{"bad size format", `{"prompt":"p","size":"512"}`, CodeInvalidSize},
		{"step 0", `{"prompt":"p","step":0}`, CodeInvalidStep},
		{"step 51", `{"prompt":"p","step":51}`, CodeInvalidStep},
		{"step negative", `{"prompt":"p","step":-1}`, CodeInvalidStep},
		{"number 0", `{"prompt":"p","number":0}`, CodeInvalidNumber},
		{"number negative", `{"prompt":"p","number":-3}`, CodeInvalidNumber},
		{"batch 0", `{"prompt":"p","batch":0}`, CodeInvalidBatch},
		{"too many", `{"prompt":"p","number":4,"batch":5}`, CodeTooManyImages},
		{"overflowing product", `{"prompt":"p","number":4294967296,"batch":4294967296}`, CodeTooManyImages},
		{"bad format", `{"prompt":"p","response_format":"png"}`, CodeInvalidFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeRequest([]byte(c.body), DefaultLimits(), fixedSeed)
			ae := AsAPIError(err)
			require.NotNil(t, ae, "want an APIError, got %v", err)
			assert.Equal(t, http.StatusBadRequest, ae.Status)
			assert.Equal(t, c.code, ae.Code, ae.Message)
			assert.NotEmpty(t, ae.Message)
		})
	}
}

func TestDecodeRequestCap(t *testing.T) {
	_, err := DecodeRequest([]byte(`{"prompt":"p","number":16}`), DefaultLimits(), fixedSeed)
	require.NoError(t, err)
	_, err = DecodeRequest([]byte(`{"prompt":"p","number":2,"batch":2}`), Limits{MaxImages: 3, Sizes: DefaultLimits().Sizes}, fixedSeed)
	require.Equal(t, CodeTooManyImages, AsAPIError(err).Code)
}

func TestDecodeOpenAIRequest(t *testing.T) {
	r, err := DecodeOpenAIRequest([]byte(`{"prompt":"p","n":3,"size":"1024x1024","response_format":"b64_json","model":"dall-e-3","quality":"hd"}`), DefaultLimits(), fixedSeed)
	require.NoError(t, err)
	assert.Equal(t, Request{Prompt: "p", Number: 3, Batch: 1, Steps: 4, Size: "1024x1024", Width: 1024, Height: 1024,
		Seed: 42, ResponseFormat: FormatB64JSON}, r)
	_, err = DecodeOpenAIRequest([]byte(`{"prompt":"p","n":0}`), DefaultLimits(), fixedSeed)
	ae := AsAPIError(err)
	require.NotNil(t, ae)
	assert.Equal(t, CodeInvalidNumber, ae.Code)
	assert.True(t, strings.HasPrefix(ae.Message, "n must"), ae.Message)
	_, err = DecodeOpenAIRequest([]byte(`{"n":1}`), DefaultLimits(), fixedSeed)
	assert.Equal(t, CodeMissingPrompt, AsAPIError(err).Code)
}

func TestConfiguredSizes(t *testing.T) {
	sz, err := ParseSizes([]string{"64x64", "768x512"})
	require.NoError(t, err)
	lim := Limits{MaxImages: 4, Sizes: sz}
	r, err := DecodeRequest([]byte(`{"prompt":"p","size":"768x512"}`), lim, fixedSeed)
	require.NoError(t, err)
	assert.Equal(t, [2]int{768, 512}, [2]int{r.Width, r.Height})
	_, err = DecodeRequest([]byte(`{"prompt":"p"}`), lim, fixedSeed)
	assert.Equal(t, CodeInvalidSize, AsAPIError(err).Code, "512x512 is not configured")
	for _, bad := range []string{"63x64", "64x60", "4096x64", "64x64x", "x64", "064x64", " 64x64", "32x32"} {
		_, err := ParseSizes([]string{bad})
		assert.ErrorIs(t, err, ErrConfig, bad)
	}
}

func TestParsePrefixes(t *testing.T) {
	p, err := ParsePrefixes(" 10.0.0.0/8, 127.0.0.1 ,::1")
	require.NoError(t, err)
	require.Len(t, p, 3)
	assert.Equal(t, "10.0.0.0/8", p[0].String())
	assert.Equal(t, "127.0.0.1/32", p[1].String())
	assert.Equal(t, "::1/128", p[2].String())
	p, err = ParsePrefixes("")
	require.NoError(t, err)
	assert.NotNil(t, p)
	assert.Empty(t, p)
	_, err = ParsePrefixes("10.0.0.0/8,bogus")
	require.ErrorIs(t, err, ErrConfig)
}

// FuzzDecodeRequest: any body either decodes into a request that satisfies
// every invariant the engine relies on, or is refused with a 400 APIError;
// never a panic.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"prompt": "` + pandaPrompt + `", "number": 1}`,
		`{"prompt": "` + pandaPrompt + `", "number": 1, "size": "1024x1024"}`,
		`{"prompt":"p","number":2,"batch":8,"step":50,"seed":-1,"response_format":"b64_json","async":true}`,
		`{"prompt":"p","number":4294967296,"batch":4294967296}`,
		`{"prompt":"\u0000\ud800","x":[{"y":null}]}`,
		`[]`, `null`, ``, `{`, `{"prompt":1}`, `{"prompt":"p"} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dec := range []func([]byte, Limits, func() int64) (Request, error){DecodeRequest, DecodeOpenAIRequest} {
			r, err := dec(body, DefaultLimits(), fixedSeed)
			if err != nil {
				ae := AsAPIError(err)
				if ae == nil || ae.Status != http.StatusBadRequest || ae.Code == "" || ae.Message == "" {
					t.Fatalf("error is not a 400 APIError: %#v", err)
				}
				continue
			}
			if strings.TrimSpace(r.Prompt) == "" || r.Number < 1 || r.Batch < 1 || r.Number*r.Batch > 16 ||
				r.Steps < 1 || r.Steps > MaxSteps || DefaultLimits().Sizes[r.Size] != [2]int{r.Width, r.Height} ||
				(r.ResponseFormat != FormatURL && r.ResponseFormat != FormatB64JSON) {
				t.Fatalf("accepted an invalid request: %+v", r)
			}
		}
	})
}
