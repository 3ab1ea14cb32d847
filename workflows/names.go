package workflows

// RunCommandWorkflowName is the registered name of RunCommand; the worker
// registers it under this name and the API starts it by this name, so a
// rename of the Go function never breaks running histories.
const RunCommandWorkflowName = "RunCommand"

// Activity names. Package activities implements them with exactly these names;
// the workflow refers to them by string because it must not import activities.
const (
	// ActivityResolveTargets turns InstanceIDs/Targets into the ordered
	// instance list and inserts one Pending invocation row per instance.
	ActivityResolveTargets = "ResolveTargets"
	// ActivityDispatchInvocations enqueues a batch of invocations for delivery
	// to their agents and returns at once; offline agents keep theirs queued.
	ActivityDispatchInvocations = "DispatchInvocations"
	// ActivityAwaitResults long-polls for invocation changes newer than a
	// cursor and returns them in batches. It must heartbeat at least every
	// few seconds: the workflow sets a 20 s heartbeat timeout. Agents that are
	// not connected should be reported Delayed promptly, because the ramp-up
	// waits for every invocation of a ramp batch to be acknowledged.
	ActivityAwaitResults = "AwaitResults"
	// ActivityExpireInvocations marks invocations Delivery Timed Out.
	ActivityExpireInvocations = "ExpireInvocations"
	// ActivityCancelInvocations cancels queued invocations and asks agents to
	// kill running ones.
	ActivityCancelInvocations = "CancelInvocations"
	// ActivityRecordProgress persists the command's live status and counters.
	ActivityRecordProgress = "RecordProgress"
	// ActivityFinishCommand persists the command's final status and counters.
	ActivityFinishCommand = "FinishCommand"
)

// SignalCancel is the signal that cancels a command (CancelCommand); its
// payload is a CancelRequest.
const SignalCancel = "cancel"

// QueryStatus is the query that returns the live CommandProgress.
const QueryStatus = "status"

// ErrTypeInvalidInput is the application error type for bad input. It is
// listed as non-retryable in every activity's retry policy, so an activity
// that rejects its input with temporal.NewNonRetryableApplicationError or
// this type fails fast instead of retrying forever.
const ErrTypeInvalidInput = "InvalidInput"

// CommandWorkflowID is the workflow ID of a command's RunCommand workflow.
// Deriving it from the command ID makes a duplicate start a no-op and lets
// the API signal and query the workflow knowing only the command.
func CommandWorkflowID(commandID string) string { return "command:" + commandID }

// SessionWorkflowName is the registered name of Session, the workflow that
// owns a Session Manager session's lifecycle and timers.
const SessionWorkflowName = "Session"

// Session activity names; package activities implements them.
const (
	// ActivitySessionEnd ends a session (input SessionEndInput): it asks
	// the bridges to close it (store RequestTerminate) and marks it ended
	// with the reason (store EndSession). Idempotent.
	ActivitySessionEnd = "SessionEnd"
	// ActivitySessionSetStatus records a Connected/Disconnected change
	// (input SessionStatusInput). A refused transition (the session ended
	// meanwhile) is not an error.
	ActivitySessionSetStatus = "SessionSetStatus"
)

// Session signals. The server's bridge and API send them to
// SessionWorkflowID(sessionID).
const (
	// SignalSessionConnected: the client's stream and the agent's data
	// channel are bridged. Payload SessionConnection.
	SignalSessionConnected = "connected"
	// SignalSessionDisconnected: the client's stream dropped without a
	// FrameClose; the agent side stays open for the resume grace.
	// Payload SessionConnection.
	SignalSessionDisconnected = "disconnected"
	// SignalSessionActivity: data flowed (either way) since the last
	// report; sent at most every 30 s. No payload.
	SignalSessionActivity = "activity"
	// SignalSessionEnded: the session ended on its own (the shell exited,
	// the client sent FrameClose, the agent failed to open it). Payload
	// SessionEnded.
	SignalSessionEnded = "ended"
	// SignalSessionTerminate: an operator asked to terminate it. Payload
	// SessionTerminate.
	SignalSessionTerminate = "terminate"
)

// SessionWorkflowID is the workflow ID of a session's Session workflow.
func SessionWorkflowID(sessionID string) string { return "session:" + sessionID }
