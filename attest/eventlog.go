package attest

import (
	"crypto/sha512"
	"fmt"
)

// RuntimeRTMR is the TDX runtime measurement register the gateway extends with
// workload events. RTMR0..2 belong to firmware, kernel and command line
// (measured boot); RTMR3 is left to user space by the Linux tdx_guest driver.
const RuntimeRTMR = 3

// EventType names what an event measures. A policy allow-lists measurements
// per type.
type EventType string

// Event types recorded by the gateway at start.
const (
	// EventModel measures the served model: SHA-256 of the canonical manifest
	// (see package attest/measure, ModelManifest).
	EventModel EventType = "model"
	// EventBackendBinary measures the backend executable (SHA-256 of the file).
	EventBackendBinary EventType = "backend-binary"
	// EventGatewayBinary measures the gateway executable (SHA-256 of the file).
	EventGatewayBinary EventType = "gateway-binary"
	// EventConfig measures the effective configuration (SHA-256 of its
	// canonical JSON form).
	EventConfig EventType = "config"
)

// Valid reports whether t is one of the event types of evidence version 1.
func (t EventType) Valid() bool {
	switch t {
	case EventModel, EventBackendBinary, EventGatewayBinary, EventConfig:
		return true
	}
	return false
}

// EventDomain is the domain-separation prefix of EventDigest.
const EventDomain = "tdxl/event/v1"

// MaxDescriptionLen bounds Event.Description (bytes of UTF-8).
const MaxDescriptionLen = 1024

// Event is one entry of the runtime event log: something the gateway
// measured at start and extended into RTMR3.
type Event struct {
	// Index is the event's position in the log, 0-based and consecutive.
	Index int `cbor:"index"`
	// Register is the RTMR the event was extended into; always RuntimeRTMR (3)
	// in evidence version 1.
	Register int `cbor:"register"`
	// Type says what was measured.
	Type EventType `cbor:"type"`
	// Measurement is the SHA-256 (32 bytes) of the measured thing: the value
	// a policy allow-lists (model manifest digest, binary digest, config digest).
	Measurement []byte `cbor:"measurement"`
	// Digest is the 48-byte SHA-384 value extended into the register; always
	// EventDigest(Type, Measurement).
	Digest []byte `cbor:"digest"`
	// Description is informative only (e.g. the model name or file path); it
	// is not measured and a verifier must not base decisions on it.
	Description string `cbor:"description,omitempty"`
}

// EventDigest derives the 48-byte value extended into RTMR3 for one event:
//
//	Digest = SHA-384( "tdxl/event/v1" ‖ 0x00 ‖ type ‖ 0x00 ‖ measurement )
//
// The type names contain no NUL byte, so the encoding is unambiguous. Binding
// the type into the digest stops a model digest from being replayed as, say,
// a config digest.
func EventDigest(typ EventType, measurement []byte) [48]byte {
	d := sha512.New384()
	d.Write([]byte(EventDomain))
	d.Write([]byte{0})
	d.Write([]byte(typ))
	d.Write([]byte{0})
	d.Write(measurement)
	var out [48]byte
	d.Sum(out[:0])
	return out
}

// NewEvent returns the event with the given index, type and measurement,
// its Register set to RuntimeRTMR and its Digest derived by EventDigest.
func NewEvent(index int, typ EventType, measurement []byte, description string) Event {
	dg := EventDigest(typ, measurement)
	return Event{
		Index:       index,
		Register:    RuntimeRTMR,
		Type:        typ,
		Measurement: append([]byte(nil), measurement...),
		Digest:      dg[:],
		Description: description,
	}
}

// ExtendRTMR returns SHA-384(current ‖ digest), the TDG.MR.RTMR.EXTEND
// operation.
func ExtendRTMR(current [48]byte, digest [48]byte) [48]byte {
	d := sha512.New384()
	d.Write(current[:])
	d.Write(digest[:])
	var out [48]byte
	d.Sum(out[:0])
	return out
}

// ReplayRTMR replays events, in order, onto an all-zero register (the value
// of RTMR3 when the TD starts) and returns the final value: what the quote's
// RTMR3 must equal if exactly these events were extended and nothing else.
// Each event's Digest is used as is (a Digest that is not 48 bytes is hashed
// in as it stands and therefore cannot match); call CheckEvents to validate
// the log first.
func ReplayRTMR(events []Event) [48]byte {
	var r [48]byte
	for _, e := range events {
		d := sha512.New384()
		d.Write(r[:])
		d.Write(e.Digest)
		d.Sum(r[:0])
	}
	return r
}

// CheckEvents validates an event log structurally: consecutive indices from
// 0, Register == RuntimeRTMR, a known Type, a 32-byte Measurement, Digest ==
// EventDigest(Type, Measurement), and a bounded Description. Errors wrap
// ErrMalformed.
func CheckEvents(events []Event) error {
	for i, e := range events {
		if err := e.check(i); err != nil {
			return fmt.Errorf("%w: event %d: %v", ErrMalformed, i, err)
		}
	}
	return nil
}

func (e Event) check(i int) error {
	switch {
	case e.Index != i:
		return fmt.Errorf("index %d, want %d", e.Index, i)
	case e.Register != RuntimeRTMR:
		return fmt.Errorf("register %d, want %d", e.Register, RuntimeRTMR)
	case !e.Type.Valid():
		return fmt.Errorf("unknown type %q", e.Type)
	case len(e.Measurement) != 32:
		return fmt.Errorf("measurement is %d bytes, want 32", len(e.Measurement))
	case len(e.Description) > MaxDescriptionLen:
		return fmt.Errorf("description is %d bytes, max %d", len(e.Description), MaxDescriptionLen)
	}
	want := EventDigest(e.Type, e.Measurement)
	if string(e.Digest) != string(want[:]) {
		return fmt.Errorf("digest %x is not EventDigest(type, measurement) = %x", e.Digest, want)
	}
	return nil
}
