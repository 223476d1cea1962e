package ca

import (
	"testing"

	"autoscaler-cloudscale/test/ca/conformance"
)

func TestCA1361OverMTLS(t *testing.T) { conformance.Run(t, release, true) }

func TestCA1361OverH2C(t *testing.T) { conformance.Run(t, release, false) }
