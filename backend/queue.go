package backend

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Job states, as GET /api/text2image/<id> reports them.
const (
	stateQueued  = "queued"
	stateRunning = "running"
	stateSuccess = "success"
	stateError   = "error"
)

// job is one accepted request, from queueing to its answer.
type job struct {
	id      string
	req     Request
	created time.Time
	async   bool

	ctx    context.Context
	cancel context.CancelCauseFunc

	state       atomic.Value // string
	stepsDone   atomic.Int64
	stepsTotal  int
	once        sync.Once
	done        chan struct{} // closed when result or err is set
	result      *jobResult
	err         *APIError
	elem        *list.Element // guarded by jobQueue.mu
	releaseStop func() bool
}

// jobResult is a finished job: the response with URLs still to be made
// absolute (url format) or images inline (b64_json format).
type jobResult struct {
	resp  Response
	files []string // output[i]'s file name (url format)
	grid  bool
}

func newJob(parent context.Context, id string, req Request, timeout time.Duration, now time.Time) *job {
	ctx, cancel := context.WithCancelCause(parent)
	if timeout > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeoutCause(ctx, timeout, errTimeout)
		orig := cancel
		cancel = func(cause error) { orig(cause); c2() }
	}
	j := &job{id: id, req: req, created: now, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		stepsTotal: req.Number * req.Steps}
	j.state.Store(stateQueued)
	return j
}

func (j *job) stateName() string { return j.state.Load().(string) }

// finish records the outcome once; later calls are ignored.
func (j *job) finish(res *jobResult, err *APIError) {
	j.once.Do(func() { j.finishOnce(res, err) })
}

func (j *job) finishOnce(res *jobResult, err *APIError) {
	j.result, j.err = res, err
	if err != nil {
		j.state.Store(stateError)
	} else {
		j.state.Store(stateSuccess)
	}
	close(j.done)
	j.cancel(errFinished)
	if j.releaseStop != nil {
		j.releaseStop()
	}
}

// jobQueue is a bounded FIFO of jobs waiting for the engine. Jobs can be
// taken out of the middle when their client goes away.
type jobQueue struct {
	mu     sync.Mutex
	items  list.List
	max    int
	closed bool
	signal chan struct{} // capacity 1: "something was pushed or closed"
}

func newJobQueue(max int) *jobQueue {
	return &jobQueue{max: max, signal: make(chan struct{}, 1)}
}

type queueErr int

const (
	errQueueFull queueErr = iota + 1
	errQueueClosed
)

func (e queueErr) Error() string {
	if e == errQueueFull {
		return "queue full"
	}
	return "queue closed"
}

func (q *jobQueue) push(j *job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errQueueClosed
	}
	if q.items.Len() >= q.max {
		return errQueueFull
	}
	j.elem = q.items.PushBack(j)
	q.notify()
	return nil
}

func (q *jobQueue) notify() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// remove takes j out of the queue; it reports false if j was not waiting
// (already taken by the worker, or never queued).
func (q *jobQueue) remove(j *job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if j.elem == nil {
		return false
	}
	q.items.Remove(j.elem)
	j.elem = nil
	return true
}

// pop waits for the next job; it returns nil when the queue is closed and
// empty or ctx is done.
func (q *jobQueue) pop(ctx context.Context) *job {
	for {
		q.mu.Lock()
		if e := q.items.Front(); e != nil {
			j := q.items.Remove(e).(*job)
			j.elem = nil
			q.mu.Unlock()
			return j
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-q.signal:
		case <-ctx.Done():
			return nil
		}
	}
}

// close refuses further pushes and returns the jobs that were waiting.
func (q *jobQueue) close() []*job {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	var out []*job
	for e := q.items.Front(); e != nil; e = e.Next() {
		j := e.Value.(*job)
		j.elem = nil
		out = append(out, j)
	}
	q.items.Init()
	q.notify()
	return out
}

func (q *jobQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.items.Len()
}
