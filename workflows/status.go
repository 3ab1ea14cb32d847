package workflows

// invState is one invocation's state as the workflow tracks it: a byte so
// 10,000 targets cost 10 KB of ContinueAsNew payload.
type invState = byte

const (
	stPending    invState = iota // never dispatched
	stDispatched                 // handed to DispatchInvocations, no news yet
	stDelayed                    // delivery retried (agent offline): acknowledged, not started
	stStarted                    // agent reported InProgress
	stSuccess                    // terminal states from here on
	stFailed
	stExecutionTimedOut
	stDeliveryTimedOut
	stCancelled
	stTerminated
	stUndeliverable
	stInvalidPlatform
	stAccessDenied
)

// isTerminal reports whether s is final; terminal states never change.
func isTerminal(s invState) bool { return s >= stSuccess }

// classify maps SSM invocation Status/StatusDetails to a state. Unknown or
// Pending updates map to stPending, which callers ignore.
func classify(status, details string) invState {
	switch status {
	case StatusSuccess:
		return stSuccess
	case StatusFailed:
		switch details {
		case DetailsUndeliverable:
			return stUndeliverable
		case DetailsInvalidPlatform:
			return stInvalidPlatform
		case DetailsAccessDenied:
			return stAccessDenied
		}
		return stFailed
	case StatusTimedOut:
		// Only the delivery flavour is excused from MaxErrors; anything else
		// the agent reports as TimedOut ran and overran.
		if details == DetailsDeliveryTimedOut {
			return stDeliveryTimedOut
		}
		return stExecutionTimedOut
	case StatusCancelled:
		if details == DetailsTerminated {
			return stTerminated
		}
		return stCancelled
	case StatusInProgress:
		return stStarted
	case StatusDelayed:
		return stDelayed
	}
	return stPending
}

// Tally counts invocations per state; AggregateStatus derives the command
// status from it alone, which keeps the rules testable without a workflow.
type Tally struct {
	// Targets is the resolved target count.
	Targets int
	// Pending counts invocations never dispatched.
	Pending int
	// InProgress counts dispatched invocations not terminal yet (Pending on
	// the agent side, Delayed or InProgress).
	InProgress int
	// Terminal counts, one per invocation StatusDetails.
	Success, Failed, ExecutionTimedOut, DeliveryTimedOut, Cancelled, Terminated int
	Undeliverable, InvalidPlatform, AccessDenied                                int
}

// add moves one invocation into (delta 1) or out of (delta -1) state s.
func (t *Tally) add(s invState, delta int) {
	switch s {
	case stPending:
		t.Pending += delta
	case stDispatched, stDelayed, stStarted:
		t.InProgress += delta
	case stSuccess:
		t.Success += delta
	case stFailed:
		t.Failed += delta
	case stExecutionTimedOut:
		t.ExecutionTimedOut += delta
	case stDeliveryTimedOut:
		t.DeliveryTimedOut += delta
	case stCancelled:
		t.Cancelled += delta
	case stTerminated:
		t.Terminated += delta
	case stUndeliverable:
		t.Undeliverable += delta
	case stInvalidPlatform:
		t.InvalidPlatform += delta
	case stAccessDenied:
		t.AccessDenied += delta
	}
}

// Errors is what MaxErrors counts: Failed + Execution Timed Out.
func (t Tally) Errors() int { return t.Failed + t.ExecutionTimedOut }

// notDelivered counts the outcomes that are neither a success nor an error
// and that SSM ignores when deciding Success (reference 1.5 last row).
func (t Tally) notDelivered() int { return t.Undeliverable + t.InvalidPlatform + t.AccessDenied }

// Completed is SSM's CompletedCount: every terminal invocation.
func (t Tally) Completed() int {
	return t.Success + t.Failed + t.ExecutionTimedOut + t.DeliveryTimedOut + t.Cancelled + t.Terminated + t.notDelivered()
}

// AllTerminal reports whether no invocation can change any more.
func (t Tally) AllTerminal() bool { return t.Pending == 0 && t.InProgress == 0 }

// Counters returns SSM's four counters.
func (t Tally) Counters() Counters {
	return Counters{
		TargetCount:           t.Targets,
		CompletedCount:        t.Completed(),
		ErrorCount:            t.Errors(),
		DeliveryTimedOutCount: t.DeliveryTimedOut,
	}
}

// AggregateStatus computes the command Status and StatusDetails from the
// invocation tally, the absolute MaxErrors and whether the whole command was
// cancelled, following reference 1.5's pseudo-code in its order. Choices the
// reference marks as inference ([X]): Incomplete and No Instances In Tag
// carry Status Failed (CommandStatus has no value of its own for them); a
// MaxErrors stop reports In Progress until the in-flight invocations end; its
// details say Execution Timed Out when every counted error was a timeout.
func AggregateStatus(t Tally, maxErrors int, cancelRequested bool) (status, details string) {
	switch {
	case t.Targets == 0:
		return StatusFailed, DetailsNoInstancesInTag
	case cancelRequested:
		if t.AllTerminal() {
			return StatusCancelled, DetailsCancelled
		}
		return StatusCancelling, DetailsCancelling
	case t.Errors() > maxErrors:
		if !t.AllTerminal() {
			return StatusInProgress, DetailsInProgress
		}
		if t.Failed == 0 {
			return StatusFailed, DetailsExecutionTimedOut
		}
		return StatusFailed, DetailsFailed
	case !t.AllTerminal():
		if t.InProgress == 0 && t.Completed() == 0 {
			return StatusPending, DetailsPending
		}
		return StatusInProgress, DetailsInProgress
	case t.Success > 0 && t.Success+t.notDelivered() == t.Targets:
		return StatusSuccess, DetailsSuccess
	case t.notDelivered() == t.Targets:
		return StatusFailed, DetailsFailed
	case t.DeliveryTimedOut >= max(maxErrors, 1):
		return StatusTimedOut, DetailsDeliveryTimedOut
	default:
		return StatusFailed, DetailsIncomplete
	}
}
