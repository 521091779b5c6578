package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Error codes of the API's error bodies ({"status":"error","error":{"code":…}}).
const (
	CodeInvalidJSON      = "invalid_json"       // 400: body is not one JSON object
	CodeInvalidType      = "invalid_type"       // 400: a field has the wrong JSON type
	CodeMissingPrompt    = "missing_prompt"     // 400: prompt absent or blank
	CodeInvalidSize      = "invalid_size"       // 400: size not 512x512 / 1024x1024
	CodeInvalidStep      = "invalid_step"       // 400: step outside 1..50
	CodeInvalidNumber    = "invalid_number"     // 400: number < 1
	CodeInvalidBatch     = "invalid_batch"      // 400: batch < 1
	CodeTooManyImages    = "too_many_images"    // 400: number×batch above the cap
	CodeInvalidFormat    = "invalid_format"     // 400: response_format not url / b64_json
	CodeBodyTooLarge     = "body_too_large"     // 413
	CodeQueueFull        = "queue_full"         // 429 + Retry-After
	CodeNotReady         = "not_ready"          // 503: model still loading
	CodeShuttingDown     = "shutting_down"      // 503: draining
	CodeEngineError      = "engine_error"       // 500: the engine failed (id logged)
	CodeTimeout          = "timeout"            // 504: the per-request timeout expired
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
)

// APIError is an error answered to the client with an HTTP status and a
// machine-readable code.
type APIError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when > 0, is sent as the Retry-After header (seconds).
	RetryAfter int
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message) }

func badRequest(code, format string, args ...any) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsAPIError returns err as an *APIError (nil if it is not one).
func AsAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	ID     string      `json:"id,omitempty"`
	Status string      `json:"status"`
	Error  ErrorDetail `json:"error"`
}

// ErrorDetail is the "error" object of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Type is set on /v1/images/generations for OpenAI clients.
	Type string `json:"type,omitempty"`
}

func writeError(w http.ResponseWriter, id string, e *APIError, openAI bool) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	body := ErrorBody{ID: id, Status: "error", Error: ErrorDetail{Code: e.Code, Message: e.Message}}
	if openAI {
		body.Error.Type = "invalid_request_error"
		if e.Status >= 500 {
			body.Error.Type = "server_error"
		}
	}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are written; cannot happen
		http.Error(w, `{"status":"error","error":{"code":"internal","message":"encoding response"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
