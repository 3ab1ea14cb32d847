package workflows

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in       string
		isErrors bool
		want     Rate
		wantErr  bool
	}{
		{in: "1", want: Rate{Value: 1}},
		{in: "50", want: Rate{Value: 50}},
		{in: "1234567", want: Rate{Value: 1234567}},
		{in: "1%", want: Rate{Value: 1, Percent: true}},
		{in: "25%", want: Rate{Value: 25, Percent: true}},
		{in: "100%", want: Rate{Value: 100, Percent: true}},
		{in: "0", wantErr: true},
		{in: "0%", wantErr: true},
		{in: "", wantErr: true},
		{in: "01", wantErr: true},
		{in: "101%", wantErr: true},
		{in: "12345678", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "1.5", wantErr: true},
		{in: " 1", wantErr: true},
		{in: "0", isErrors: true, want: Rate{Value: 0}},
		{in: "0%", isErrors: true, want: Rate{Value: 0, Percent: true}},
		{in: "9%", isErrors: true, want: Rate{Value: 9, Percent: true}},
		{in: "100%", isErrors: true, want: Rate{Value: 100, Percent: true}},
		{in: "3", isErrors: true, want: Rate{Value: 3}},
		{in: "00", isErrors: true, wantErr: true},
		{in: "05%", isErrors: true, wantErr: true},
		{in: "100", isErrors: true, want: Rate{Value: 100}},
		{in: "200%", isErrors: true, wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in, tt.isErrors)
		if tt.wantErr {
			require.Error(t, err, "%q", tt.in)
			assert.True(t, errors.Is(err, ErrInvalidRate))
			var re *RateError
			require.ErrorAs(t, err, &re)
			wantField := "MaxConcurrency"
			if tt.isErrors {
				wantField = "MaxErrors"
			}
			assert.Equal(t, wantField, re.Field)
			continue
		}
		require.NoError(t, err, "%q", tt.in)
		assert.Equal(t, tt.want.Value, got.Value, "%q", tt.in)
		assert.Equal(t, tt.want.Percent, got.Percent, "%q", tt.in)
		assert.Equal(t, tt.in, got.String())
	}
}

func TestRateOf(t *testing.T) {
	tests := []struct {
		in       string
		isErrors bool
		targets  int
		want     int
	}{
		{"10%", true, 50, 5}, // stops on the 6th error (reference 1.3)
		{"10%", true, 9, 0},  // floor
		{"0", true, 50, 0},
		{"3", true, 50, 3},
		{"100%", true, 7, 7},
		{"25%", false, 40, 10},
		{"25%", false, 3, 1}, // floor would be 0; concurrency is at least 1
		{"1%", false, 50, 1},
		{"1%", false, 250, 2},
		{"100%", false, 10000, 10000},
		{"50", false, 10, 50}, // an absolute count is not clipped
		{"100%", false, 0, 1},
	}
	for _, tt := range tests {
		r, err := ParseRate(tt.in, tt.isErrors)
		require.NoError(t, err)
		assert.Equal(t, tt.want, r.Of(tt.targets), "%s of %d (errors %v)", tt.in, tt.targets, tt.isErrors)
	}
}
