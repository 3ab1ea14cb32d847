package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// One row per line of reference 1.5's aggregation and status table.
func TestAggregateStatus(t *testing.T) {
	tests := []struct {
		name        string
		tally       Tally
		maxErrors   int
		cancel      bool
		wantStatus  string
		wantDetails string
	}{
		{"no instances in tag", Tally{}, 0, false, StatusFailed, DetailsNoInstancesInTag},
		{"nothing sent", Tally{Targets: 3, Pending: 3}, 0, false, StatusPending, DetailsPending},
		{"some in flight", Tally{Targets: 3, Pending: 1, InProgress: 1, Success: 1}, 0, false, StatusInProgress, DetailsInProgress},
		{"cancel, still running", Tally{Targets: 3, InProgress: 1, Cancelled: 2}, 0, true, StatusCancelling, DetailsCancelling},
		{"cancel, all terminal", Tally{Targets: 3, Success: 1, Cancelled: 2}, 0, true, StatusCancelled, DetailsCancelled},
		{"cancel wins over errors", Tally{Targets: 3, Failed: 2, Cancelled: 1}, 0, true, StatusCancelled, DetailsCancelled},
		{"errors past MaxErrors, in flight finishing", Tally{Targets: 5, InProgress: 2, Failed: 1, Terminated: 2}, 0, false, StatusInProgress, DetailsInProgress},
		{"errors past MaxErrors", Tally{Targets: 5, Failed: 4, Terminated: 1}, 3, false, StatusFailed, DetailsFailed},
		{"execution timeouts past MaxErrors", Tally{Targets: 5, ExecutionTimedOut: 2, Success: 1, Terminated: 2}, 1, false, StatusFailed, DetailsExecutionTimedOut},
		{"mixed errors past MaxErrors", Tally{Targets: 5, ExecutionTimedOut: 1, Failed: 1, Terminated: 3}, 1, false, StatusFailed, DetailsFailed},
		{"errors equal to MaxErrors are Incomplete", Tally{Targets: 5, Failed: 3, Success: 2}, 3, false, StatusFailed, DetailsIncomplete},
		{"all success", Tally{Targets: 3, Success: 3}, 0, false, StatusSuccess, DetailsSuccess},
		{"success beside undeliverable, invalid platform, access denied", Tally{Targets: 4, Success: 1, Undeliverable: 1, InvalidPlatform: 1, AccessDenied: 1}, 0, false, StatusSuccess, DetailsSuccess},
		{"all undeliverable", Tally{Targets: 2, Undeliverable: 1, AccessDenied: 1}, 0, false, StatusFailed, DetailsFailed},
		{"delivery timed out, MaxErrors 0", Tally{Targets: 3, Success: 2, DeliveryTimedOut: 1}, 0, false, StatusTimedOut, DetailsDeliveryTimedOut},
		{"delivery timeouts are not errors", Tally{Targets: 9, DeliveryTimedOut: 9}, 0, false, StatusTimedOut, DetailsDeliveryTimedOut},
		{"delivery timed out reaching MaxErrors", Tally{Targets: 5, Success: 2, DeliveryTimedOut: 3}, 3, false, StatusTimedOut, DetailsDeliveryTimedOut},
		{"few delivery timeouts are Incomplete", Tally{Targets: 5, Success: 3, DeliveryTimedOut: 2}, 3, false, StatusFailed, DetailsIncomplete},
		{"cancelled invocations are Incomplete", Tally{Targets: 3, Success: 2, Cancelled: 1}, 0, false, StatusFailed, DetailsIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotStatus, gotDetails := AggregateStatus(tt.tally, tt.maxErrors, tt.cancel)
			assert.Equal(t, tt.wantStatus, gotStatus)
			assert.Equal(t, tt.wantDetails, gotDetails)
		})
	}
}

func TestTallyCounters(t *testing.T) {
	tl := Tally{Targets: 12, Pending: 1, InProgress: 1, Success: 1, Failed: 1, ExecutionTimedOut: 1, DeliveryTimedOut: 1,
		Cancelled: 1, Terminated: 1, Undeliverable: 1, InvalidPlatform: 1, AccessDenied: 1}
	assert.Equal(t, Counters{TargetCount: 12, CompletedCount: 9, ErrorCount: 2, DeliveryTimedOutCount: 1}, tl.Counters())
	assert.False(t, tl.AllTerminal())
}

func TestClassify(t *testing.T) {
	tests := []struct {
		status, details string
		want            invState
	}{
		{StatusSuccess, DetailsSuccess, stSuccess},
		{StatusFailed, DetailsFailed, stFailed},
		{StatusFailed, DetailsUndeliverable, stUndeliverable},
		{StatusFailed, DetailsInvalidPlatform, stInvalidPlatform},
		{StatusFailed, DetailsAccessDenied, stAccessDenied},
		{StatusTimedOut, DetailsExecutionTimedOut, stExecutionTimedOut},
		{StatusTimedOut, DetailsDeliveryTimedOut, stDeliveryTimedOut},
		{StatusCancelled, DetailsCancelled, stCancelled},
		{StatusCancelled, DetailsTerminated, stTerminated},
		{StatusInProgress, DetailsInProgress, stStarted},
		{StatusDelayed, DetailsDelayed, stDelayed},
		{StatusPending, DetailsPending, stPending},
		{"Bogus", "", stPending},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, classify(tt.status, tt.details), "%s/%s", tt.status, tt.details)
	}
}
