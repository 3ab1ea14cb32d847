package workflows

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// outcome is what a simulated agent does with an invocation.
type outcome int

const (
	oSuccess         outcome = iota // starts, then succeeds
	oFail                           // starts, then fails (non-zero exit)
	oExecTimeout                    // starts, then the agent reports Execution Timed Out
	oNeverStart                     // agent offline: no acknowledgement at all
	oDelayed                        // delivery retried: Delayed, never starts
	oHang                           // starts, never reports (agent died mid-run)
	oUndeliverable                  // gateway reports Failed/Undeliverable
	oInvalidPlatform                // Failed/Invalid Platform
	oAccessDenied                   // Failed/Access Denied
)

// agentSpec is one simulated agent's behaviour.
type agentSpec struct {
	out outcome
	// run is how many polls after starting the invocation ends (min 1).
	run int
	// killDelay is how many polls a kill request takes to land.
	killDelay int
}

// simInv is one invocation as the simulated store sees it.
type simInv struct {
	id         string
	spec       agentSpec
	dispatched bool
	started    bool
	delayed    bool
	terminal   bool
	reported   bool // terminal result handed to the workflow
	startTick  int
	killAt     int // tick a requested kill lands; 0 = none
}

// sim is an in-memory store + gateway + agents implementing the activities.
// Every AwaitResults call is one tick: newly dispatched invocations start,
// started ones end after spec.run ticks. Results queue in a change log read
// by cursor, in batches, like the real store.
type sim struct {
	mu       sync.Mutex
	ids      []string
	specs    func(i int) agentSpec
	inv      map[string]*simInv
	order    []*simInv // dispatch order
	log      []InvocationResult
	tick     int
	batchMax int

	// Observations.
	inflight, maxInflight int   // dispatched and not reported terminal
	dispatchBatches       []int // sizes, in order
	reportedErrors        int   // Failed + Execution Timed Out seen by the workflow
	maxErrorsSeenAtSend   int   // reportedErrors at the latest dispatch
	violations            []string
	activityCalls         map[string]int
	finish                *FinishInput
	records               []RecordProgressInput
	cancels               []CancelInput
	expires               []ExpireInput
}

// newSim builds a simulator for n targets named i-00000000 … .
func newSim(n int, specs func(i int) agentSpec) *sim {
	s := &sim{specs: specs, inv: map[string]*simInv{}, batchMax: 50, activityCalls: map[string]int{}}
	for i := range n {
		id := fmt.Sprintf("i-%08d", i)
		s.ids = append(s.ids, id)
		s.inv[id] = &simInv{id: id, spec: specs(i)}
	}
	return s
}

func allOf(o outcome) func(int) agentSpec { return func(int) agentSpec { return agentSpec{out: o} } }

func (s *sim) count(name string) { s.activityCalls[name]++ }

// report marks results handed to the workflow and updates the observations.
func (s *sim) report(rs []InvocationResult) {
	for _, r := range rs {
		inv := s.inv[r.InstanceID]
		st := classify(r.Status, r.StatusDetails)
		if !isTerminal(st) || inv.reported {
			continue
		}
		inv.reported = true
		if inv.dispatched {
			s.inflight--
		}
		if st == stFailed || st == stExecutionTimedOut {
			s.reportedErrors++
		}
	}
}

func (s *sim) emit(inv *simInv, status, details string) {
	s.log = append(s.log, InvocationResult{InstanceID: inv.id, Status: status, StatusDetails: details})
	if isTerminal(classify(status, details)) {
		inv.terminal = true
	}
}

func (s *sim) ResolveTargets(_ context.Context, in ResolveTargetsInput) (ResolveTargetsResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(ActivityResolveTargets)
	return ResolveTargetsResult{InstanceIDs: slices.Clone(s.ids)}, nil
}

func (s *sim) DispatchInvocations(_ context.Context, in DispatchInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(ActivityDispatchInvocations)
	s.dispatchBatches = append(s.dispatchBatches, len(in.InstanceIDs))
	s.maxErrorsSeenAtSend = s.reportedErrors
	for _, id := range in.InstanceIDs {
		inv := s.inv[id]
		if inv.dispatched || inv.terminal {
			s.violations = append(s.violations, "dispatch of "+id+" twice or after it ended")
			continue
		}
		inv.dispatched = true
		s.order = append(s.order, inv)
		s.inflight++
	}
	s.maxInflight = max(s.maxInflight, s.inflight)
	return nil
}

func (s *sim) AwaitResults(_ context.Context, in AwaitResultsInput) (AwaitResultsResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(ActivityAwaitResults)
	s.tick++
	for _, inv := range s.order {
		if inv.terminal {
			continue
		}
		switch {
		case inv.started && inv.killAt > 0 && s.tick >= inv.killAt:
			s.emit(inv, StatusCancelled, DetailsCancelled)
		case inv.started:
			if s.tick >= inv.startTick+max(inv.spec.run, 1) {
				switch inv.spec.out {
				case oSuccess:
					s.emit(inv, StatusSuccess, DetailsSuccess)
				case oFail:
					s.emit(inv, StatusFailed, DetailsFailed)
				case oExecTimeout:
					s.emit(inv, StatusTimedOut, DetailsExecutionTimedOut)
				}
			}
		default:
			switch inv.spec.out {
			case oNeverStart:
			case oDelayed:
				if !inv.delayed {
					inv.delayed = true
					s.emit(inv, StatusDelayed, DetailsDelayed)
				}
			case oUndeliverable:
				s.emit(inv, StatusFailed, DetailsUndeliverable)
			case oInvalidPlatform:
				s.emit(inv, StatusFailed, DetailsInvalidPlatform)
			case oAccessDenied:
				s.emit(inv, StatusFailed, DetailsAccessDenied)
			default:
				inv.started, inv.startTick = true, s.tick
				s.emit(inv, StatusInProgress, DetailsInProgress)
			}
		}
	}
	from := min(int(in.Cursor), len(s.log))
	to := min(from+min(s.batchMax, max(in.MaxResults, 1)), len(s.log))
	out := slices.Clone(s.log[from:to])
	s.report(out)
	return AwaitResultsResult{Results: out, Cursor: int64(to)}, nil
}

func (s *sim) ExpireInvocations(_ context.Context, in ExpireInput) ([]InvocationResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(ActivityExpireInvocations)
	s.expires = append(s.expires, in)
	var out []InvocationResult
	for _, id := range in.InstanceIDs {
		inv := s.inv[id]
		if inv.terminal || (inv.started && !in.IncludeStarted) {
			continue
		}
		inv.terminal = true
		out = append(out, InvocationResult{InstanceID: id, Status: StatusTimedOut, StatusDetails: in.Details})
	}
	s.report(out)
	return out, nil
}

func (s *sim) CancelInvocations(_ context.Context, in CancelInput) ([]InvocationResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(ActivityCancelInvocations)
	s.cancels = append(s.cancels, in)
	var out []InvocationResult
	for _, id := range in.InstanceIDs {
		inv := s.inv[id]
		switch {
		case inv.terminal:
		case inv.started:
			inv.killAt = s.tick + 1 + inv.spec.killDelay
		default:
			inv.terminal = true
			out = append(out, InvocationResult{InstanceID: id, Status: StatusCancelled, StatusDetails: DetailsCancelled})
		}
	}
	s.report(out)
	return out, nil
}

func (s *sim) RecordProgress(_ context.Context, in RecordProgressInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(ActivityRecordProgress)
	s.records = append(s.records, in)
	return nil
}

func (s *sim) FinishCommand(_ context.Context, in FinishInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(ActivityFinishCommand)
	if s.finish != nil && s.finish.Status != in.Status {
		s.violations = append(s.violations, "FinishCommand called twice with different statuses")
	}
	s.finish = &in
	return nil
}

// dispatched reports whether the workflow ever sent id.
func (s *sim) dispatched(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inv[id].dispatched
}

// totalDispatched counts invocations the workflow sent.
func (s *sim) totalDispatched() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}
