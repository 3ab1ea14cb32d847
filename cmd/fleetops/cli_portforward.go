package main

import (
	"github.com/spf13/cobra"
)

// newPortForwardCmd is filled in with the yamux data-channel adapter.
func newPortForwardCmd(o *clientOptions) *cobra.Command {
	return &cobra.Command{Use: "port-forward", Hidden: true}
}
