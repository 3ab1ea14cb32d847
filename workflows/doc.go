// Package workflows holds fleetops' deterministic Temporal workflow code.
//
// It owns the lifecycle, rate control, timers and retries of long-running
// operations; every side effect happens in activities implemented by package
// activities against the names and types declared here. This package must not
// import activities (DESIGN.md: arrows point down), so the activity names,
// inputs and results live here as plain exported types.
package workflows
