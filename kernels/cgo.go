package kernels

// The only cgo file of package kernels: thin wrappers over the C ABI of tdxl_capi.h.
// Go memory handed to C is a slice's backing array passed as a call argument (it holds no Go
// pointers and C does not keep it beyond the call), which cgo's rules allow without pinning.

/*
#cgo CXXFLAGS: -O2 -std=c++17
#cgo CPPFLAGS: -I${SRCDIR}/internal/isa
#cgo LDFLAGS: -lm -lpthread
#include <stdlib.h>
#include "tdxl_capi.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/tdxl/tdxl/kernels/internal/isa"
)

// The fast kernels (package isa) are called by the C++ core through their function table.
func init() { C.tdxl_core_set_isa_api(isa.API()) }

const errBufLen = 1024

// errCancelled is returned by a stage that saw the cancel flag.
var errCancelled = errors.New("kernels: cancelled")

// cstatus converts a status code and message buffer into an error.
func cstatus(rc C.int, buf []byte) error {
	switch rc {
	case C.TDXL_OK:
		return nil
	case C.TDXL_CANCELLED:
		return errCancelled
	}
	n := 0
	for n < len(buf) && buf[n] != 0 {
		n++
	}
	return errors.New(string(buf[:n]))
}

func errbuf() ([]byte, *C.char, C.size_t) {
	b := make([]byte, errBufLen)
	return b, (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

func fptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func iptr(s []int64) *C.int64_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.int64_t)(unsafe.Pointer(&s[0]))
}

// handle wraps a *C.tdxl_pipe.
type handle struct{ p *C.tdxl_pipe }

func newHandle(cfg *C.tdxl_pipe_config) (*handle, error) {
	b, e, n := errbuf()
	var p *C.tdxl_pipe
	if err := cstatus(C.tdxl_pipe_new(cfg, &p, e, n), b); err != nil {
		return nil, err
	}
	return &handle{p: p}, nil
}

// setTensor feeds one tensor; used=false when the core has no parameter of that name.
func (h *handle) setTensor(component int, name string, dtype int, shape []int64, data []byte) (used bool, err error) {
	b, e, n := errbuf()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var dp unsafe.Pointer
	if len(data) > 0 {
		dp = unsafe.Pointer(&data[0])
	}
	rc := C.tdxl_pipe_set_tensor(h.p, C.int(component), cname, C.int(dtype), iptr(shape), C.int(len(shape)),
		dp, C.size_t(len(data)), e, n)
	if rc == C.TDXL_UNUSED {
		return false, nil
	}
	return true, cstatus(rc, b)
}

func (h *handle) finish() error {
	b, e, n := errbuf()
	return cstatus(C.tdxl_pipe_finish(h.p, e, n), b)
}

func (h *handle) free() {
	if h.p != nil {
		C.tdxl_pipe_free(h.p)
		h.p = nil
	}
}

func (h *handle) cancel(on bool) {
	v := 0
	if on {
		v = 1
	}
	C.tdxl_pipe_cancel(h.p, C.int(v))
}

func (h *handle) threads() int { return int(C.tdxl_pipe_threads(h.p)) }

func (h *handle) kernelPath() string { return C.GoString(C.tdxl_pipe_kernel_path(h.p)) }

func (h *handle) reserve(batch, lh, lw, textLen int) error {
	b, e, n := errbuf()
	return cstatus(C.tdxl_pipe_reserve(h.p, C.int(batch), C.int(lh), C.int(lw), C.int(textLen), e, n), b)
}

func (h *handle) arenaStats() ActivationStats {
	var req, fresh, peak C.uint64_t
	C.tdxl_pipe_arena_stats(h.p, &req, &fresh, &peak)
	return ActivationStats{Requests: uint64(req), NewBlocks: uint64(fresh), PeakBytes: uint64(peak)}
}

// schedTables computes the scheduler tables for steps inference steps.
func schedTables(cfg *C.tdxl_sched_config, steps, numTrain int) (ts, sigmas []float32, init float32, ac, trainSigmas []float32, err error) {
	if steps < 1 || steps > numTrain {
		return nil, nil, 0, nil, nil, fmt.Errorf("steps %d out of range [1, %d]", steps, numTrain)
	}
	ts = make([]float32, steps)
	sigmas = make([]float32, steps+1)
	ac = make([]float32, numTrain)
	trainSigmas = make([]float32, numTrain+1)
	var ci C.float
	b, e, n := errbuf()
	err = cstatus(C.tdxl_sched_tables(cfg, C.int(steps), fptr(ts), fptr(sigmas), &ci, fptr(ac), fptr(trainSigmas), e, n), b)
	return ts, sigmas, float32(ci), ac, trainSigmas, err
}

// clipForward runs one text encoder; outputs may be nil.
func (h *handle) clipForward(which int, ids []int64, batch, T int, hidden, last, pooled, textEmbeds []float32) error {
	b, e, n := errbuf()
	return cstatus(C.tdxl_clip_forward(h.p, C.int(which), iptr(ids), C.int(batch), C.int(T),
		fptr(hidden), fptr(last), fptr(pooled), fptr(textEmbeds), e, n), b)
}

func (h *handle) encodePrompt(ids1, ids2 []int64, batch, T int, embeds, pooled []float32) error {
	b, e, n := errbuf()
	return cstatus(C.tdxl_encode_prompt(h.p, iptr(ids1), iptr(ids2), C.int(batch), C.int(T),
		fptr(embeds), fptr(pooled), e, n), b)
}

func (h *handle) unetForward(sample []float32, batch, lh, lw int, t float32, ehs []float32, T int, textEmbeds, timeIDs, out []float32) error {
	b, e, n := errbuf()
	return cstatus(C.tdxl_unet_forward(h.p, fptr(sample), C.int(batch), C.int(lh), C.int(lw), C.float(t),
		fptr(ehs), C.int(T), fptr(textEmbeds), fptr(timeIDs), fptr(out), e, n), b)
}

func (h *handle) denoiseStep(latents []float32, batch, lh, lw int, t, sigma, sigmaNext float32, noise, ehs []float32, T int,
	textEmbeds, timeIDs []float32, prediction int, unetInput, noisePred []float32) error {
	b, e, n := errbuf()
	return cstatus(C.tdxl_denoise_step(h.p, fptr(latents), C.int(batch), C.int(lh), C.int(lw), C.float(t), C.float(sigma),
		C.float(sigmaNext), fptr(noise), fptr(ehs), C.int(T), fptr(textEmbeds), fptr(timeIDs), C.int(prediction),
		fptr(unetInput), fptr(noisePred), e, n), b)
}

func (h *handle) vaeDecode(latents []float32, batch, lh, lw int, vaeInput, decoded []float32) error {
	b, e, n := errbuf()
	return cstatus(C.tdxl_vae_decode(h.p, fptr(latents), C.int(batch), C.int(lh), C.int(lw), fptr(vaeInput), fptr(decoded), e, n), b)
}

// postprocess converts decoded NCHW [B][3][H][W] to NHWC float and RGBA bytes (either may be nil).
func postprocess(decoded []float32, batch, H, W int, imageFloat []float32, rgba []byte) {
	var rp *C.uint8_t
	if len(rgba) > 0 {
		rp = (*C.uint8_t)(unsafe.Pointer(&rgba[0]))
	}
	C.tdxl_postprocess(fptr(decoded), C.int(batch), C.int(H), C.int(W), fptr(imageFloat), rp)
}

func (h *handle) debugEnable(on bool) {
	v := 0
	if on {
		v = 1
	}
	C.tdxl_debug_enable(h.p, C.int(v))
}

// debugGet returns a recorded intermediate and its shape (nil if absent).
func (h *handle) debugGet(name string) ([]float32, []int64) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var shape [8]C.int64_t
	var nd C.int
	cnt := int64(C.tdxl_debug_get(h.p, cname, nil, 0, &shape[0], &nd))
	if cnt <= 0 {
		return nil, nil
	}
	out := make([]float32, cnt)
	C.tdxl_debug_get(h.p, cname, fptr(out), C.int64_t(cnt), &shape[0], &nd)
	s := make([]int64, int(nd))
	for i := range s {
		s[i] = int64(shape[i])
	}
	return out, s
}

// Test hooks over the reference ops (see capi_ops.cpp); bias/residual may be nil.
func opLinear(threads int, w, bias []float32, N, K int, x []float32, M int, residual, y []float32) error {
	if C.tdxl_op_linear(C.int(threads), fptr(w), fptr(bias), C.int64_t(N), C.int64_t(K), fptr(x), C.int64_t(M),
		fptr(residual), fptr(y)) != C.TDXL_OK {
		return errors.New("tdxl_op_linear failed")
	}
	return nil
}

func opConv2d(threads int, w, bias []float32, cout, cin, k, stride, pad int, x []float32, B, H, W int, y []float32) error {
	if C.tdxl_op_conv2d(C.int(threads), fptr(w), fptr(bias), C.int(cout), C.int(cin), C.int(k), C.int(stride), C.int(pad),
		fptr(x), C.int(B), C.int(H), C.int(W), fptr(y)) != C.TDXL_OK {
		return errors.New("tdxl_op_conv2d failed")
	}
	return nil
}

func opAttention(threads int, q, k, v, o []float32, B, Tq, Tk, H, D int, scale float32, causal bool) error {
	if C.tdxl_op_attention(C.int(threads), fptr(q), fptr(k), fptr(v), fptr(o), C.int(B), C.int64_t(Tq), C.int64_t(Tk),
		C.int(H), C.int(D), C.float(scale), C.int(b2i(causal))) != C.TDXL_OK {
		return errors.New("tdxl_op_attention failed")
	}
	return nil
}

func opGroupNorm(threads int, x, y []float32, B, HW, Ch, groups int, eps float32, gamma, beta []float32, silu bool) error {
	if C.tdxl_op_group_norm(C.int(threads), fptr(x), fptr(y), C.int(B), C.int64_t(HW), C.int(Ch), C.int(groups),
		C.float(eps), fptr(gamma), fptr(beta), C.int(b2i(silu))) != C.TDXL_OK {
		return errors.New("tdxl_op_group_norm failed")
	}
	return nil
}

// params lists the parameters the core expects for a component ("name d0,d1,...").
func (h *handle) params(component int) []string {
	n := int64(C.tdxl_pipe_params(h.p, C.int(component), nil, 0))
	if n <= 0 {
		return nil
	}
	buf := make([]byte, n+1)
	C.tdxl_pipe_params(h.p, C.int(component), (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")
}
