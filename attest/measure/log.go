package measure

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/tdxl/tdxl/attest"
)

// Log is the gateway's runtime event log: each Record appends an event and
// extends RTMR3 with its digest, so that the quote's RTMR3 equals
// attest.ReplayRTMR(Events()).
//
// Extension is all or nothing. If the extender is nil, if RTMR3 cannot be
// read or extended the first time, or if RTMR3 is not zero when the log
// starts (e.g. a gateway restarted inside the same TD: the earlier run's
// extensions cannot be replayed by a verifier), the log keeps recording
// but extends nothing, and Apply marks the evidence "not extended" with the
// reason. An extension failing after earlier ones succeeded leaves RTMR3
// and the log out of step: Record returns an error and the log refuses
// further events (fail closed).
type Log struct {
	mu       sync.Mutex
	ext      Extender
	log      *slog.Logger
	events   []attest.Event
	started  bool
	extended bool
	status   string
	broken   error
}

// NewLog returns an empty log extending through ext (nil: never extends).
func NewLog(ext Extender, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{ext: ext, log: logger}
	if ext == nil {
		l.status = "no RTMR extender (not a TDX guest)"
	}
	return l
}

// Record appends an event for typ/measurement and extends RTMR3 with it.
func (l *Log) Record(typ attest.EventType, measurement [32]byte, description string) (attest.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return attest.Event{}, l.broken
	}
	if !typ.Valid() {
		return attest.Event{}, fmt.Errorf("measure: unknown event type %q", typ)
	}
	if len(description) > attest.MaxDescriptionLen {
		description = description[:attest.MaxDescriptionLen]
	}
	ev := attest.NewEvent(len(l.events), typ, measurement[:], description)
	if !l.started {
		l.start()
	}
	if l.extended {
		var d [48]byte
		copy(d[:], ev.Digest)
		if err := l.ext.Extend(attest.RuntimeRTMR, d); err != nil {
			if len(l.events) == 0 {
				l.extended = false
				l.status = "RTMR3 extension failed: " + err.Error()
				l.log.Warn("runtime measurements not extended into RTMR3", "reason", l.status)
			} else {
				l.broken = fmt.Errorf("measure: extending RTMR3 with event %d failed after %d succeeded; RTMR3 and the event log disagree: %w", ev.Index, ev.Index, err)
				return attest.Event{}, l.broken
			}
		}
	}
	l.events = append(l.events, ev)
	l.log.Info("runtime measurement", "index", ev.Index, "type", string(typ),
		"measurement", hex.EncodeToString(ev.Measurement), "rtmr3_extended", l.extended, "description", description)
	return ev, nil
}

// start decides, before the first event, whether this log extends RTMR3.
func (l *Log) start() {
	l.started = true
	if l.ext == nil {
		return
	}
	cur, err := l.ext.Read(attest.RuntimeRTMR)
	switch {
	case err != nil:
		l.status = "RTMR3 unreadable: " + err.Error()
	case cur != [48]byte{}:
		l.status = "RTMR3 was already extended before this gateway started (value " +
			hex.EncodeToString(cur[:]) + "); runtime claims are not bound"
	default:
		l.extended = true
		l.status = "extended"
		return
	}
	l.log.Warn("runtime measurements not extended into RTMR3", "reason", l.status)
}

// Events returns a copy of the recorded events.
func (l *Log) Events() []attest.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]attest.Event(nil), l.events...)
}

// Extended reports whether every recorded event was extended into RTMR3,
// and why not.
func (l *Log) Extended() (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started && l.status == "" {
		return false, "no runtime events recorded"
	}
	return l.extended && l.started && l.broken == nil, l.status
}

// Apply copies the event log and extension status into e. RTMRExtended is
// set only for TDX evidence.
func (l *Log) Apply(e *attest.Evidence) {
	ok, status := l.Extended()
	e.EventLog = l.Events()
	e.RTMRExtended = ok && e.TEE == attest.TEETDX
	if !e.RTMRExtended && ok {
		status = "not a TDX quote"
	}
	if len(status) > attest.MaxDescriptionLen {
		status = status[:attest.MaxDescriptionLen]
	}
	e.RTMRStatus = strings.ToValidUTF8(status, "?")
}
