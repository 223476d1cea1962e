package legacy

import (
	"testing"

	"autoscaler-cloudscale/test/ca/conformance"
)

func TestCA1341OverMTLS(t *testing.T) { conformance.Run(t, release, true) }

func TestCA1341OverH2C(t *testing.T) { conformance.Run(t, release, false) }
