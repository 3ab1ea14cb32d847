package workflows

import "time"

// Command statuses (SSM CommandStatus / CommandInvocationStatus).
const (
	StatusPending    = "Pending"
	StatusInProgress = "InProgress"
	StatusDelayed    = "Delayed"
	StatusSuccess    = "Success"
	StatusCancelled  = "Cancelled"
	StatusFailed     = "Failed"
	StatusTimedOut   = "TimedOut"
	StatusCancelling = "Cancelling"
)

// StatusDetails strings, human text with spaces exactly as SSM shows them.
const (
	DetailsPending           = "Pending"
	DetailsInProgress        = "In Progress"
	DetailsDelayed           = "Delayed"
	DetailsSuccess           = "Success"
	DetailsDeliveryTimedOut  = "Delivery Timed Out"
	DetailsExecutionTimedOut = "Execution Timed Out"
	DetailsFailed            = "Failed"
	DetailsIncomplete        = "Incomplete"
	DetailsCancelled         = "Cancelled"
	DetailsCancelling        = "Cancelling"
	DetailsTerminated        = "Terminated"
	DetailsUndeliverable     = "Undeliverable"
	DetailsInvalidPlatform   = "Invalid Platform"
	DetailsAccessDenied      = "Access Denied"
	DetailsNoInstancesInTag  = "No Instances In Tag"
)

// Target is one SendCommand target entry (reference 1.2): entries are ANDed,
// values within an entry ORed. Resolution happens in ResolveTargets.
type Target struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

// RunCommandInput starts RunCommand. The command row already exists (the API
// inserted it); the workflow only needs what drives rate control and timers.
type RunCommandInput struct {
	// CommandID identifies the command row and its invocations.
	CommandID string `json:"commandId"`
	// DocumentName is carried for logs and visibility; activities read the
	// document itself from the store.
	DocumentName string `json:"documentName,omitempty"`
	// InstanceIDs and Targets are passed to ResolveTargets unchanged.
	InstanceIDs []string `json:"instanceIds,omitempty"`
	Targets     []Target `json:"targets,omitempty"`
	// MaxConcurrency and MaxErrors are SSM strings ("10", "25%"); empty means
	// SSM's defaults "50" and "0".
	MaxConcurrency string `json:"maxConcurrency,omitempty"`
	MaxErrors      string `json:"maxErrors,omitempty"`
	// TimeoutSeconds is the delivery timeout from the command's start; 0
	// means 3600 (reference 1.4).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// ExecutionTimeoutSeconds is the document's execution timeout; an
	// invocation still unreported at TimeoutSeconds+ExecutionTimeoutSeconds
	// becomes Delivery Timed Out. 0 means 3600.
	ExecutionTimeoutSeconds int `json:"executionTimeoutSeconds,omitempty"`
	// Tuning overrides batching and polling knobs; zero values take defaults.
	Tuning RunCommandTuning `json:"tuning,omitempty"`
	// State is set only by ContinueAsNew: the progress of the previous run.
	State *RunCommandState `json:"state,omitempty"`
}

// RunCommandTuning holds the knobs that trade latency for history size. They
// are inputs rather than constants so tests and very large fleets can adjust
// them without a code change.
type RunCommandTuning struct {
	// PollMaxWait bounds one AwaitResults long poll (default 30s).
	PollMaxWait time.Duration `json:"pollMaxWait,omitempty"`
	// PollLinger is how long AwaitResults keeps collecting after the first
	// change, so results arrive in batches (default 500ms).
	PollLinger time.Duration `json:"pollLinger,omitempty"`
	// PollMaxResults caps one AwaitResults batch (default 1000).
	PollMaxResults int `json:"pollMaxResults,omitempty"`
	// IdlePollDelay is waited after a poll returned nothing before polling
	// again, so an idle command does not spin (default 1s).
	IdlePollDelay time.Duration `json:"idlePollDelay,omitempty"`
	// MaxDispatchBatch caps the instance IDs in one DispatchInvocations call
	// (default 2000, ~50 KB).
	MaxDispatchBatch int `json:"maxDispatchBatch,omitempty"`
	// ContinueAsNewAfterEvents is the history length at which a run hands
	// over to a fresh one (default 5000; Temporal suggests ~4,100–10k).
	ContinueAsNewAfterEvents int `json:"continueAsNewAfterEvents,omitempty"`
}

// RunCommandState is what one run hands the next across ContinueAsNew. It is
// compact on purpose: one byte per target instead of a struct.
type RunCommandState struct {
	// Targets is the resolved, de-duplicated, ordered instance list.
	Targets []string `json:"targets"`
	// States holds one invocation state code per target (see invState).
	States []byte `json:"states"`
	// Next is the index of the first target that may still be undispatched.
	Next int `json:"next"`
	// Cursor is the AwaitResults cursor.
	Cursor int64 `json:"cursor"`
	// StartedAt is the command's start; the timeouts count from it.
	StartedAt time.Time `json:"startedAt"`
	// RampFrom..RampTo is the last ramp batch; RampBatch the next batch size.
	RampFrom  int  `json:"rampFrom"`
	RampTo    int  `json:"rampTo"`
	RampBatch int  `json:"rampBatch"`
	RampDone  bool `json:"rampDone,omitempty"`
	// Stopped is set once errors exceeded MaxErrors.
	Stopped bool `json:"stopped,omitempty"`
	// TerminatedRecorded is set once the Terminated list was persisted.
	TerminatedRecorded bool `json:"terminatedRecorded,omitempty"`
	// CancelAll is set by a cancel of the whole command; CancelAllSent once
	// CancelInvocations ran for it. CancelQueue holds subset cancels not yet
	// sent.
	CancelAll     bool     `json:"cancelAll,omitempty"`
	CancelAllSent bool     `json:"cancelAllSent,omitempty"`
	CancelQueue   []string `json:"cancelQueue,omitempty"`
	// Delivery* and Final* track the two deadlines: passed, and handled.
	DeliveryExpired    bool `json:"deliveryExpired,omitempty"`
	DeliveryExpireDone bool `json:"deliveryExpireDone,omitempty"`
	FinalExpired       bool `json:"finalExpired,omitempty"`
	FinalExpireDone    bool `json:"finalExpireDone,omitempty"`
	// Forced lists invocations whose final state the workflow settled itself
	// because an activity did not report one; FinishCommand persists them.
	Forced []InvocationResult `json:"forced,omitempty"`
	// Runs counts completed runs, for logs.
	Runs int `json:"runs,omitempty"`
}

// RunCommandResult is RunCommand's result: the final status and counters.
type RunCommandResult struct {
	Status        string `json:"status"`
	StatusDetails string `json:"statusDetails"`
	Counters
}

// Counters are SSM's four command counters (reference 1.5).
type Counters struct {
	TargetCount           int `json:"targetCount"`
	CompletedCount        int `json:"completedCount"`
	ErrorCount            int `json:"errorCount"`
	DeliveryTimedOutCount int `json:"deliveryTimedOutCount"`
}

// CommandProgress is the live view returned by the status query and
// persisted by RecordProgress.
type CommandProgress struct {
	CommandID     string `json:"commandId"`
	Status        string `json:"status"`
	StatusDetails string `json:"statusDetails"`
	Counters
	// InFlight counts dispatched invocations that are not terminal yet.
	InFlight int `json:"inFlight"`
	// NotDispatched counts invocations never sent (still Pending).
	NotDispatched int `json:"notDispatched"`
	// MaxConcurrency and MaxErrors are the absolute limits in force.
	MaxConcurrency int `json:"maxConcurrency"`
	MaxErrors      int `json:"maxErrors"`
	// CancelRequested says a cancel of the whole command was received.
	CancelRequested bool `json:"cancelRequested,omitempty"`
}

// CancelRequest is the SignalCancel payload. No instance IDs cancels the
// whole command; otherwise only the named invocations (CancelCommand's
// InstanceIds). Naming every unfinished invocation cancels the command.
type CancelRequest struct {
	InstanceIDs []string `json:"instanceIds,omitempty"`
}

// InvocationResult is one invocation's status change, using SSM's invocation
// Status and StatusDetails strings, e.g. TimedOut/"Execution Timed Out",
// Failed/"Undeliverable", Cancelled/"Terminated". Non-terminal changes
// (InProgress when the agent starts, Delayed when delivery is retried) count
// as the acknowledgement the ramp-up waits for.
type InvocationResult struct {
	InstanceID    string `json:"instanceId"`
	Status        string `json:"status"`
	StatusDetails string `json:"statusDetails"`
}

// ResolveTargetsInput is ActivityResolveTargets' input.
type ResolveTargetsInput struct {
	CommandID   string   `json:"commandId"`
	InstanceIDs []string `json:"instanceIds,omitempty"`
	Targets     []Target `json:"targets,omitempty"`
}

// ResolveTargetsResult is the ordered instance list; the activity has
// inserted one Pending invocation row for each before returning.
type ResolveTargetsResult struct {
	InstanceIDs []string `json:"instanceIds"`
}

// DispatchInput is ActivityDispatchInvocations' input. Dispatching the same
// invocation twice must be harmless (the agent dedups invocation IDs).
type DispatchInput struct {
	CommandID   string   `json:"commandId"`
	InstanceIDs []string `json:"instanceIds"`
}

// AwaitResultsInput is ActivityAwaitResults' input.
type AwaitResultsInput struct {
	CommandID string `json:"commandId"`
	// Cursor is the last change already seen; 0 at the start.
	Cursor int64 `json:"cursor"`
	// MaxWait bounds the long poll; an empty result means it elapsed.
	MaxWait time.Duration `json:"maxWait"`
	// Linger is how long to keep collecting after the first change.
	Linger time.Duration `json:"linger"`
	// MaxResults caps the batch; the rest comes on the next call.
	MaxResults int `json:"maxResults"`
	// ReturnAfter returns the batch as soon as it holds this many changes,
	// without waiting for the burst to end: the ramp-up knows how many
	// acknowledgements it waits for. 0: no such hint.
	ReturnAfter int `json:"returnAfter,omitempty"`
}

// AwaitResultsResult is a batch of changes in the order they happened and
// the cursor after the last one.
type AwaitResultsResult struct {
	Results []InvocationResult `json:"results"`
	Cursor  int64              `json:"cursor"`
}

// ExpireInput is ActivityExpireInvocations' input. The activity marks each
// listed invocation that has not started (IncludeStarted false: the delivery
// deadline) or that is not terminal (IncludeStarted true: the final deadline)
// as TimedOut/Details and returns the resulting status of every listed
// invocation it found terminal, so a race with an agent report is settled by
// the store, not the workflow.
type ExpireInput struct {
	CommandID      string   `json:"commandId"`
	InstanceIDs    []string `json:"instanceIds"`
	Details        string   `json:"details"`
	IncludeStarted bool     `json:"includeStarted,omitempty"`
}

// CancelInput is ActivityCancelInvocations' input. The activity marks listed
// invocations that never reached an agent Cancelled and returns them, and asks
// agents to kill the running ones, which then report through AwaitResults.
type CancelInput struct {
	CommandID   string   `json:"commandId"`
	InstanceIDs []string `json:"instanceIds"`
}

// RecordProgressInput is ActivityRecordProgress' input. Terminated, when set,
// lists invocations to mark Cancelled/"Terminated" now (MaxErrors cut-off),
// so readers see them before the last in-flight invocation ends.
type RecordProgressInput struct {
	Progress   CommandProgress `json:"progress"`
	Terminated []string        `json:"terminated,omitempty"`
}

// FinishInput is ActivityFinishCommand's input: the final status and counters,
// the invocations that were never sent because of the MaxErrors cut-off
// (to mark Cancelled/"Terminated"), and any invocation whose final state the
// workflow had to settle itself (Forced). It must be idempotent.
type FinishInput struct {
	CommandID     string `json:"commandId"`
	Status        string `json:"status"`
	StatusDetails string `json:"statusDetails"`
	Counters
	Terminated []string           `json:"terminated,omitempty"`
	Forced     []InvocationResult `json:"forced,omitempty"`
}
